"""Tuning a collection's search settings on its own data (``splare-connect tune``).

The settings that decide search quality (query top-k, plain sparse or a hybrid, the
fusion, its weights and RRF's ``k``) were chosen on our collections; the best ones differ
between collections and languages. :func:`~splare_connect.tuning.run.tune` measures each
candidate on the user's collection, as stored, on the engine it lives in: quality
(nDCG@10, MRR@10, Recall@100) on the user's labelled queries, or on known-item queries
made from the collection itself, and latency there. The choice can then be kept with the
collection (:func:`~splare_connect.search_settings.keep_search_settings`), where every
search path reads it.

- :mod:`~splare_connect.tuning.queries`: the queries and their judgements.
- :mod:`~splare_connect.tuning.candidates`: the settings tried, as far as the engine offers them.
- :mod:`~splare_connect.tuning.metrics`: nDCG@10, MRR@10 and Recall@100 from a ranking.
- :mod:`~splare_connect.tuning.run`: measuring, choosing, and the report.
"""
