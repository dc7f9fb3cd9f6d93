"""The example application: a Japanese artist's shop (video tickets, goods, live commerce) paid
by card and konbini, built on ichido's public API only.

Its rules (orders, fees, catalogue) know nothing of HTTP; ``api`` serves them, ``app`` wires
them into an ``ichido.App``, ``cli`` and ``demo`` are its commands. The core never imports it.
"""
