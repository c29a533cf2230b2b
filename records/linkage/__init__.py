"""The Fellegi-Sunter matcher: comparison levels (``compare``), blocking (``blocking``) and the
model whose m and u probabilities are estimated per clinic (``model``). ``records.matching``
is its door: it turns records into comparable people and verdicts into merges and suggestions.
"""
