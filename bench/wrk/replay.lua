-- Replays pre-signed Stripe webhook requests written by bench/common.py:write_requests.
-- File format (path in $BENCH_REQUESTS): "<length>\n<raw HTTP request bytes>" repeated.
-- Each wrk thread takes every Nth request (thread k of N: k, k+N, ...), so threads never send
-- the same delivery unless the stream itself has it (the 30% duplicates). When a thread runs out
-- it starts again from its first request and counts a wrap (then everything is a duplicate).
-- done() prints one line "BENCH_JSON {...}" that bench/common.py parses.

local threads = {}
local counter = 0

function setup(thread)
   thread:set("tid", counter)
   table.insert(threads, thread)
   counter = counter + 1
end

local reqs = {}
local n = 0
local idx = 0
consumed = 0
wrapped = 0

function init(args)
   local nthreads = tonumber(os.getenv("BENCH_THREADS") or "0")
   if nthreads == nil or nthreads < 1 then nthreads = 1 end
   local me = tid or 0
   local path = assert(os.getenv("BENCH_REQUESTS"), "set BENCH_REQUESTS")
   local f = assert(io.open(path, "rb"))
   local i = 0
   while true do
      local line = f:read("*l")
      if not line then break end
      local len = tonumber(line)
      local req = f:read(len)
      if i % nthreads == me then
         n = n + 1
         reqs[n] = req
      end
      i = i + 1
   end
   f:close()
   assert(n > 0, "no requests in " .. path)
end

function request()
   idx = idx + 1
   if idx > n then
      idx = 1
      wrapped = wrapped + 1
   end
   consumed = consumed + 1
   return reqs[idx]
end

function done(summary, latency, requests)
   local used, wraps = 0, 0
   for _, t in ipairs(threads) do
      used = used + (t:get("consumed") or 0)
      wraps = wraps + (t:get("wrapped") or 0)
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,' ..
      '"read_errors":%d,"write_errors":%d,"status_errors":%d,"timeouts":%d,' ..
      '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"consumed":%d,"wrapped":%d}\n',
      summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
      e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.max, used, wraps))
end
