"""Flax building blocks of the mixers: dense layers and the settings they share, the shift,
diagonal and selective SSMs as parameter-owning modules with their sequence and step views,
blocked causal attention and rotary embeddings."""
