"""The payments domain for Japanese commerce: catalogue, fees, orders (card and konbini).

It knows nothing of HTTP: the receiver, the worker and the CLI call into it.
"""
