"""Ingest spread over a cluster: the sync engine's rules, with encoding on many machines.

:mod:`splare_connect.distributed.ray_ingest` runs a sync on Ray Data. Only that module
imports Ray (``pip install 'splare-connect[ray]'``); :mod:`~splare_connect.distributed.wire`
turns write batches and their vectors into plain rows that cross process boundaries.
"""
