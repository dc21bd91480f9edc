"""The only objects both threads touch: the shared state and its mutex,
the handover tables, the seqs that wake the threads, plain immutable records."""
