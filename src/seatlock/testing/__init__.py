"""What the test suite and the benchmarks share: throwaway servers and the service served by
real workers, accounts minted in bulk, and the consistency oracle that ends every sale."""
