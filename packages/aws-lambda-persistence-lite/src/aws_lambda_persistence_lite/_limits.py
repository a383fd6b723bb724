"""DynamoDB and Lambda limits, in one place, each with where the number comes from.

Nothing here does I/O; the store and the codecs size their work against these numbers.
"""

from __future__ import annotations

#: DynamoDB's maximum item size: 400 KB = 409,600 bytes, counting attribute names and values,
#: the key included (Developer Guide, "Service, account, and table quotas": "Item size").
DYNAMODB_ITEM_LIMIT = 409_600

#: What we plan items against: below the real limit by a margin that also fits moto
#: (which rejects items over 400,000 bytes of value data plus names, i.e. ~405,000 bytes in practice)
#: and DynamoDB Local. Our own size estimate is conservative on top of this.
ITEM_BUDGET = 400_000

#: TransactWriteItems: at most 100 actions and 4 MB (4,194,304 bytes) of item data in one call
#: (Developer Guide, "Amazon DynamoDB Transactions": "Transaction conflict handling" / quotas).
TRANSACT_MAX_ACTIONS = 100
TRANSACT_MAX_BYTES = 4 * 1024 * 1024
#: The budget we plan a transaction against, leaving room for keys and expressions.
TRANSACT_BUDGET = TRANSACT_MAX_BYTES - 64 * 1024

#: BatchWriteItem: at most 25 put/delete requests and 16 MB per call (API Reference, BatchWriteItem).
BATCH_WRITE_MAX_ITEMS = 25
#: BatchGetItem: at most 100 keys per call and 16 MB per response (API Reference, BatchGetItem).
BATCH_GET_MAX_KEYS = 100
BATCH_GET_MAX_BYTES = 16 * 1024 * 1024

#: Capacity accounting (Developer Guide, "Read/write capacity mode"): a standard write costs one write
#: unit per 1 KB, a transactional write two; a strongly consistent read costs one read unit per 4 KB.
WRITE_UNIT_BYTES = 1024
READ_UNIT_BYTES = 4096

#: The always-free tier: 25 provisioned WCU and 25 RCU per account and region (aws.amazon.com/free).
FREE_TIER_UNITS = 25

#: Hard ceiling on what one map may decode to, whatever a stored head claims: a damaged or hostile head must
#: never make a function allocate without bound. Lambda's largest memory setting is 10,240 MB; a map of
#: 2 GiB decoded is far beyond any sane use of this library.
MAX_DECODED_BYTES = 2 * 1024**3
