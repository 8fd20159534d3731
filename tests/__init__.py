"""
The tests of pooled_http.  L{tests.support} holds what they share (fakes,
scripted servers, connection counters); the benchmarks import it too.
"""
