"""Training the DSDrive model (joint loss, distilled chain of thought) and open-loop evaluation.

``cli`` (dsdrive-train) -> ``loop`` (the training loop; under torchrun rank 0 alone writes, and every
rank waits for its final save), ``data`` (the dataset as clips), ``metrics`` (held-out ADE/FDE,
text and end-flag metrics); ``dagger_chain`` (dsdrive-dagger: rounds of drive, label, fine-tune,
export).
"""
