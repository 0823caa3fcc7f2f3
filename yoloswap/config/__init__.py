"""What a person decides: the presets (schema, loading, "did you mean") and the training options with their
defaults and help text.

Belongs here: dataclasses, their validation and their one home for each default. Must not be here: anything that
builds a model, reads data or trains; nothing here imports torch or another yoloswap room above ``errors``.
"""
