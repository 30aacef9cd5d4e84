"""yadtq's broker layer: what differs between brokers, and yadtq's fixes to Faust's
Kafka consumer.

One module per job, imported from where it lives (this package re-exports nothing):
:mod:`.profiles` (the broker profiles: every difference between brokers),
:mod:`.transport`, :mod:`.consumer` and :mod:`.thread` (the worker's Faust transport),
:mod:`.commits` (commit bookkeeping), :mod:`.fetch_wait`, :mod:`.lanes`, :mod:`.end_offsets`,
:mod:`.heartbeats`, :mod:`.watchdogs`, :mod:`.unconfirmed`, :mod:`.batches` (whole
batches handed to aiokafka), and :mod:`.private`, the only module that touches Faust's
and aiokafka's private attributes. The stories behind each fix: ``docs/brokers.md``.
"""
