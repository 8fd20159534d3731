"""
Fault-injection tests: small scripted servers on loopback that misbehave on
purpose, one per fault, and the pool's behaviour against each.
"""
