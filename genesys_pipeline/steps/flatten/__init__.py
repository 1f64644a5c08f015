"""Flatten raw conversation-detail records into the tables of `tables.py`, streaming.

    with storage.reader(path) as raw, ParquetSink(lambda table: storage.writer(...)) as sink:
        report = flatten(read_raw_records(raw, path), Lookups.from_client(client), sink,
                         partition_date=day, run_id=raw_run_id, extracted_at=extracted_at, source=path)

Records go in one at a time; out come Arrow tables of exactly the schemas in `tables.py`, one per
table for every `batch_conversations` records, which `ParquetSink` writes as one Parquet row group
each. Memory is bounded by the batch, never by the day.

Modules, in the order a record meets them:
- `reader`: the raw gzip JSON-lines file, one record per line (`read_raw_records`).
- `lookups`: the id -> name listings that names come from (`Lookups`).
- `batches`: the entry points (`flatten_batches`, `flatten`, `flatten_to_tables`): chunks into batches.
- `collect`: the benchmarked hot loop, a chunk of records into flat Python lists, one per table.
- `details_collect`: its companion for the record's JSON text and its evaluations, surveys,
  resolutions, media endpoint stats, flows and flow outcomes (called once per record by `collect`).
- `build`: those lists into one Arrow record batch per table; names, timestamps, durations vectorised.
- `details_build`: the same for CONVERSATIONS_RAW and the quality, survey and flow tables.
- `arrays`: flat row lists -> Arrow arrays, for both.
- `state`: what every chunk of one flatten shares (the constant columns, lookups, the report).
- `fields`: which record key becomes which column; the metrics that are summed.
- `diagnosis`: `FlattenError`, and the slow paths that find the bad value in a column or record.
- `day`: one partition's raw files into its Parquet files and its `FlatManifest`.
- `report`: `FlattenReport`, what a flatten wrote and which ids it could not resolve.
- `sink`: `ParquetSink`, the Parquet files.
- `pool`: the Arrow memory pool that all of it allocates from.

Rules (genesys-api.md s5, tables.py):
- conversations: `duration_ms` = end - start, null while ongoing; `ongoing` = no `conversationEnd`.
  `media_types` = distinct session `mediaType`s in order of appearance. `division_names`: a division id
  that does not resolve stays the id. `first_queue_id` = `queueId` of the earliest (by `segmentStart`)
  segment of an `acd` participant that carries one, else of any participant's segment;
  `first_queue_name` from the queues listing, else (a deleted queue) the `participantName` of the acd
  participant that segment belongs to (the API's own name for the queue, s5.2/s5.9), else null.
  `agent_ids`: distinct `userId`s, in order of appearance, of `agent` participants that handled it
  (a session with an `interact` segment, or a `tTalk`/`tHandle` metric); `alerted_agent_ids`: those of
  the others, alerted but never handled (RONA; a userId that handled it elsewhere is not repeated).
  Names (`agent_names`, `alerted_agent_names`) from the users listing (deleted users included); an
  unresolved id stays the id. Final wrap-up: the
  `wrapUpCode` of the `wrapup` segment with the latest `segmentStart` (ties: the later one in the
  record) among the participants who wrap up (genesys-api-more.md s3.2): `agent`s, `user`s reached
  without a queue, and the dialer's leg of a campaign call (`outbound`, or `dialer`/`campaign`), which
  wraps up attempts no agent took (`ININ-OUTBOUND-*`) and agentless calls; null if that segment has
  no code (yet). Codes starting `ININ-` are system codes: the
  code is both id and name; an unresolved code also stays the code as its name. `talk_ms` ...
  `abandon_ms`: sums over all sessions' metrics of tTalk, tHeld, tAcw, tHandle, tAcd, tAbandon (a
  metric emitted several times is summed; an emission without a value is left out), null when the
  record has no such metric. `transferred` (genesys-api-more.md s4.1): an agent or user transferred it:
  any nTransferred/nBlindTransferred/nConsultTransferred with a value, or a `transfer`,
  `consultTransfer`, `conferenceTransfer` or `forwardTransfer` `disconnectType` on a segment of an
  `agent` or `user` participant. Routing redirects (`noAnswerTransfer` = RONA, `notAvailableTransfer`,
  `dndTransfer`), a queue's hand-over to an agent and a consult alone are not transfers. `abandoned`:
  any tAbandon.
- participants: `user_name` from the users listing; unresolved stays null.
- segments: `queue_name` as `first_queue_name` (listing, else the acd participant's name, else null);
  `wrapup_code_name` as the final wrap-up's name; `duration_ms` = end - start when both exist.
- session_metrics: one row per emission; `metric_index` = position in the session's `metrics`.
- participant_attributes: one row per key of a participant's `attributes` (detail jobs only).
- conversations_raw: one row per record; `record` is the record's JSON text, byte for byte the raw
  file's line (the file was written with orjson, and dumping the parsed record gives it back).
- evaluations, surveys: one row per element of `evaluations`/`surveys`, keyed by its id (a missing
  `evaluationId`/`surveyId` is an error); resolutions: one per element of `resolutions`, keyed by
  position. Queue and user names (`evaluatorId` too) from the listings, null when unresolved.
  `promoter_category` from `surveyPromoterScore`: promoter 9-10, passive 7-8, detractor 0-6.
- media_endpoint_stats: one row per element of a session's `mediaEndpointStats` (any media type),
  `codecs` as JSON array text; flows: one row per session with a `flow`, `outcome_count` the length
  of its `outcomes` (0 without); flow_outcomes: one row per element of `flow.outcomes`.
- Timestamps: ISO-8601 with a zone (the API's `...T..:..:...mmmZ`; offsets are converted to UTC,
  digits below the millisecond dropped) to timestamp[ms, UTC].
- Unknown fields are ignored; missing fields become nulls. A missing key (`conversationId`,
  `conversationStart`, `participantId`, `sessionId`, a metric's `name`), a malformed timestamp, a
  metric value that is not an integer, or a value of the wrong JSON type raise `FlattenError` naming
  the field and where it is: the source and line (= record) number, the conversation id, and the
  participant/session/segment/metric index.
"""

from genesys_pipeline.steps.flatten.batches import (
    DEFAULT_BATCH_CONVERSATIONS,
    flatten,
    flatten_batches,
    flatten_to_tables,
)
from genesys_pipeline.steps.flatten.diagnosis import FlattenError
from genesys_pipeline.steps.flatten.fields import SYSTEM_WRAPUP_PREFIX
from genesys_pipeline.steps.flatten.lookups import Lookups
from genesys_pipeline.steps.flatten.reader import read_raw_records
from genesys_pipeline.steps.flatten.report import FlattenReport
from genesys_pipeline.steps.flatten.sink import ParquetSink

__all__ = [
    "DEFAULT_BATCH_CONVERSATIONS",
    "FlattenError",
    "FlattenReport",
    "Lookups",
    "ParquetSink",
    "SYSTEM_WRAPUP_PREFIX",
    "flatten",
    "flatten_batches",
    "flatten_to_tables",
    "read_raw_records",
]
