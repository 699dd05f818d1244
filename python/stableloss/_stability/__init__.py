"""The stability bench: the adversarial input families, the mpmath oracle and the ulp measure.

Shared by the test suite (``tests/``) and ``python -m stableloss check``; needs the ``test`` extra
(mpmath).  ``families`` names the inputs, ``oracle`` defines the exact values, ``ulp`` measures.
"""
