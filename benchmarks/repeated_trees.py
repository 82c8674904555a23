"""A bigger LightGBM model made from a trained one without training: its trees repeated.

A model string lists its trees as `Tree=N` blocks after a `tree_sizes=` header that gives each
block's length in bytes (LightGBM reads the blocks by those lengths). Repeating the blocks,
renumbered, with the header rewritten, gives a model `lgb.Booster(model_str=...)` loads with
`copies` times the trees. Its cost to load and predict is that of a trained model with as many
trees of the same shape (trees, leaves, features), which is what a size limit depends on; its
raw scores are `copies` times the original's, so its ranked predictions are the original's.
"""

from __future__ import annotations

SIZES = "\ntree_sizes="
END = "end of trees"


def repeat_trees(model: str, copies: int) -> str:
    """`model` (LightGBM's text format) with its trees repeated `copies` times."""
    if copies < 1:
        raise ValueError(f"copies must be at least 1, not {copies}")
    if not model.isascii():  # tree_sizes count bytes; slicing by characters needs ASCII
        raise ValueError("the model string is not ASCII (feature names?): its tree_sizes count bytes")
    header, found, rest = model.partition(SIZES)
    if not found:
        raise ValueError("no tree_sizes line: not a LightGBM model string saved with its tree sizes")
    sizes_line, _, body = rest.partition("\n\n")
    bodies, offset = [], 0
    for size in (int(s) for s in sizes_line.split()):
        block = body[offset : offset + size]
        bodies.append(block.partition("\n")[2])  # without its `Tree=N` line
        offset += size
    tail = body[offset:]
    if not tail.startswith(END):
        raise ValueError("the tree blocks do not end where tree_sizes says: the model string is damaged")
    blocks = [f"Tree={i}\n{bodies[i % len(bodies)]}" for i in range(len(bodies) * copies)]
    sizes = " ".join(str(len(block)) for block in blocks)
    return f"{header}{SIZES}{sizes}\n\n{''.join(blocks)}{tail}"
