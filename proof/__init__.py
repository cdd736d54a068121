# -*- test-case-name: tests.test_fuzz_regressions -*-
"""`make proof`: the fuzzer, hostile clients, machine faults and the soak, with figures."""
