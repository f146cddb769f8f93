-- A dead-letter reason of its own for jobs the worker's policy re-check refuses: forbidden.
--
-- Why: queue_job() checks each job against its kind's policy at the door and records the
-- caller's provenance in the envelope; the worker checks the envelope again before the job
-- has any effect, because a message can reach a queue another way (a dead letter replayed
-- after the policy changed, a tool calling pgmq.send, a message older than provenance). A
-- job refused there is dead-lettered at once and never retried, like a malformed one, but
-- it is not a broken message: it is a caller asking for more than its level may, which an
-- operator wants to find, count and alert on apart from producer bugs
-- (docs/worker-runtime.md, "The policy re-check"; docs/runbooks/dead-letters.md).
--
-- The reasons' check takes 'forbidden' (dragonfly.dead_letter_job() accepts it since
-- 20261202171200, which defines it once for both changes). Nothing else changes: replay
-- still sends the stored envelope, provenance and all, so a replayed forbidden job is
-- refused again unless the policy changed meanwhile.

alter table dragonfly.dead_letters
    drop constraint dead_letters_reason_check,
    add constraint dead_letters_reason_check
        check (reason in ('malformed', 'forbidden', 'permanent', 'max_attempts', 'timeout'));
