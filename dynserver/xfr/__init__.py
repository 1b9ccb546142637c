"""dynserver as a primary for standard secondaries: AXFR, IXFR and NOTIFY, with TSIG."""
