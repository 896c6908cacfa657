"""The test suite. It mirrors the package (feeds/, events/, digests/, storage/, cli/ for the shells),
plus reliability/ (faults, crashes, contention, load, hostile input); shared servers and helpers are
in support/, and no test module imports another."""
