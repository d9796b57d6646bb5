"""Prompt data for lenrl.

Modules (imported one by one; this package imports nothing so that importing the synthetic task
does not pull in transformers or tensorflow-datasets):

* ``synthetic`` — the built-in reasoning task (``synthetic_example``, ``SyntheticConfig``).
* ``tokenizer`` — its word-level tokenizer (``build_synthetic_tokenizer``,
  ``save_synthetic_tokenizer``).
* ``sources`` — prompt sources as grain ``MapDataset``s (``get_source``, ``SOURCES``).
* ``pipeline`` — the sharded, checkpointable prompt iterator (``make_prompt_iterator``).
"""
