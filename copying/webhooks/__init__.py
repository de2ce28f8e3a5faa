"""Webhooks: telling web apps about outcomes, the way Commerce Layer does.

``signing`` makes and checks the ``X-CommerceLayer-Signature`` of a payload;
``addresses`` says whether a callback URL may be called at all (scheme, shape,
and where its host resolves). The HTTP call itself lives in the worker
(:mod:`worker.outbound`): the domain makes no network requests.
"""
