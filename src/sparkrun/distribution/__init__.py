"""Distribution: from a fresh cluster to serving. What a job needs (the model's files at a pinned commit, the image),
fetched once, then copied host to host down a pipelined chain into each host's Hugging Face cache and docker.

    spec.py     SyncSpec: hosts, their HF cache, the model (manifest) and image a job needs, where to download
    facts.py    what each host holds (sync_probe.sh: cache check, partial copies, images, free space, CX7 addresses)
    route.py    the copy chain: source, hops in order, the address each hop reaches the next at (CX7 first)
    chain.py    running a chain (hops forward while they write) or, without SSH between hosts, a star from here
    model.py    model sync: probe, pick a source (a host that has it, this machine, or a download), copy, re-check
    image.py    image sync: compare image ids, pull once on the source when needed, `docker save | load` down a chain
    runner.py   the whole sync for `run` and `sync`, and the steps a dry-run shows
    cache.py    `model-cache list|inspect|prune|delete`: what hosts hold, least-recently-used pruning
    memory.py   the VRAM estimate for a job (models.vram) and the refusal of a plan that cannot fit
"""
