"""What every task's training shares: the train state, step keys, optimisers,
throughput, profiling and preemption."""
