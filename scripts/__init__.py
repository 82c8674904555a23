"""Scripts that write files of the repository from its code (the docs' generated pages)."""
