"""One renderer for what a weekly run shows a person: the CLI's lines, the run summary, the run
history and their tables. Every one of them shows CORR, then the lead metrics the scorer names
(`numerflow.score.validation.LEAD_METRICS`), in that order."""
