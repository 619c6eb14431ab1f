"""The pure core of the context service: the five Resolve stages and the cache policy, no I/O."""
