"""Examples and meanings of the study-file keys that the code reading them does not carry
itself (the data.prepare options, a custom size's shape fields), for ``sweeps.study.reference``."""

PREPARE_MEANINGS = {"batch_docs": "Documents tokenized per batch while the store is written."}
PREPARE_EXAMPLES = {  # key: (example, the sibling keys it needs)
    "source": ("bible", None), "dataset": ("mlfoundations/dclm-baseline-1.0", "{source: hub}"),
    "revision": ("<commit>", "{source: hub, dataset: mlfoundations/dclm-baseline-1.0}"), "split": ("train", None),
    "files": ("[corpus/a.jsonl.zst, corpus/b.txt]", "{source: files}"), "text_field": ("text", None),
    "shuffle_seed": ("-1", None), "shuffle_buffer": ("10000", None),
    "tokenizer": ("llama3-tokenizer.json", None), "vocab_size": ("512", None), "eos_token": ("</s>", None),
    "val_tokens": ("50k", None), "val_every": ("10", None), "max_train_tokens": ("128k", None),
    "tokenizer_docs": ("20000", None), "dtype": ("uint32", None), "batch_docs": ("256", None),
    "dedupe": ("true", None),
}
SHAPE_MEANINGS = {"d_model": "Width of the residual stream.", "n_layers": "Transformer blocks.",
                  "n_heads": "Attention heads; must divide `d_model`, with an even head dimension.",
                  "n_kv_heads": "Key/value heads; must divide `n_heads` (grouped-query attention).",
                  "d_mlp": "Hidden width of the SwiGLU MLP.", "rope_theta": "RoPE base.",
                  "norm_eps": "RMSNorm epsilon."}
SHAPE_EXAMPLES = {"d_model": "768", "n_layers": "12", "n_heads": "12", "n_kv_heads": "12", "d_mlp": "2688",
                  "rope_theta": "500000.0", "norm_eps": "1.0e-6", "tie_embeddings": "true"}
