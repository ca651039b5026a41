"""The DSDrive network, its config, tokenizer and checkpoints.

Import submodules directly: `tokenizer` and `reasoning_format` are torch-free and used at run time;
`dsdrive` and `checkpoint` need torch.
"""
