"""
What the tests and the benchmarks share: fakes for driving a pool on a
L{twisted.internet.task.Clock} (L{tests.support.fakes}), small scripted
servers that misbehave on purpose (L{tests.support.servers}), connection
counters for servers and endpoints (L{tests.support.counting}), a way to
look inside Twisted's wrapped failures (L{tests.support.failures}),
loopback proxies, scripted and squid (L{tests.support.proxyservers}), and
running a test case on each wire protocol (L{tests.support.protocols}).
"""
