-- ORDER BY ts DESC LIMIT: blocks are read newest first across series and
-- reading stops once no unread block can hold a newer row.
SELECT ts, host, value FROM up ORDER BY ts DESC LIMIT 4
