"""A run's working directory: paths and object-store URIs, the claim and its
lease, checkpoints and their records and shapes, metric writers, the summary
and metric files, their one JSON convention (`jsonio`: strict, non-finite as null),
and restoring a workdir for evaluation."""
