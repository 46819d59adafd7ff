"""The encoder's parts, one job per module.

:class:`~splare_connect.encoding.encoder.SplareEncoder` composes them:

- :mod:`.inputs`: checks what callers pass to ``encode`` (texts, role, batch size);
- :mod:`.token_batches`: tokenizes texts into padded, length-bucketed batches with the mask
  of the tokens that may add features;
- :mod:`.fingerprint`: the digest that ties a collection to one vector space;
- :mod:`.progress`: the optional progress bar of long encodes.

The forward pass itself is :meth:`SplareEncoder.forward`; pooling and pruning are in
:mod:`splare_connect.encoding.pooling`. Nothing is imported here, so importing one part does not
load the others.
"""
