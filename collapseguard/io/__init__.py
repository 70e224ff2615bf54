"""Read and write dataset shards as Arrow record batches."""
