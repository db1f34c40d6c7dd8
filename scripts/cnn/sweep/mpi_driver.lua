-- A sweep spread over the ranks of an MPI job (mpirun -np N cnnlua sweep.lua):
--
-- Rank 0 schedules: it owns the sweep directory (lock, sweep.json, results.jsonl) and the queue of
-- trials, hands one trial at a time to any rank that asks (dynamic scheduling: fast ranks take
-- more), and appends the records the ranks send back. Every rank, rank 0 included, runs its trials
-- as local processes through the same pool as a laptop sweep, `workers` at a time.
--
-- Messages are small JSON texts on one tag:
--   rank k -> 0   {"kind":"want"}            a slot is free
--   0 -> rank k   {"kind":"trial","config":{...}} or {"kind":"none"} when the queue is empty
--   rank k -> 0   {"kind":"result","record":{...}}
--   rank k -> 0   {"kind":"bye"}             nothing left running on rank k
--   0 -> rank k   {"kind":"final","records":[...]} so that every rank returns the same summary
-- Trial configurations and records travel in the messages; only ASHA's rung files and the trial
-- directories (logs, checkpoints) need the out directory to be shared between nodes.
local driver = require "cnn.sweep.driver"
local json = require "cnn.sweep.json"

local mpi_driver = {}

local TAG = 7

local function send(mpi, dest, msg)
  mpi.send(dest, json.encode(msg), TAG)
end

local function receive(mpi, source)
  local text, from = mpi.recv(source, TAG)
  return json.decode(text), from
end

-- Rank 0. queue: a function returning the next trial config or nil; on_record(rec) keeps a record
-- in records (by trial id), which at the end goes to every rank.
function mpi_driver.schedule(mpi, pool, queue, on_record, records)
  local size = mpi.size()
  local ranks_left = size - 1
  local queue_empty = false
  local function take()
    if queue_empty then return nil end
    local config = queue()
    if not config then queue_empty = true end
    return config
  end
  local function service()
    local active = false
    while mpi.probe(nil, TAG) do
      local msg, from = receive(mpi)
      if msg.kind == "want" then
        local config = take()
        send(mpi, from, config and {kind = "trial", config = config} or {kind = "none"})
      elseif msg.kind == "result" then
        on_record(msg.record)
      elseif msg.kind == "bye" then
        ranks_left = ranks_left - 1
      end
      active = true
    end
    return active
  end
  driver.run(pool, take, on_record, service, function() return queue_empty and ranks_left == 0 end)
  local list = {}
  for _, rec in pairs(records) do list[#list + 1] = rec end
  for r = 1, size - 1 do send(mpi, r, {kind = "final", records = list}) end
end

-- Ranks 1..N-1: ask rank 0 for trials while slots are free, send back what they give.
-- Returns the final records of the whole sweep.
function mpi_driver.work(mpi, pool)
  local exhausted = false
  local function source()
    if exhausted then return nil end
    send(mpi, 0, {kind = "want"})
    local msg = receive(mpi, 0)
    if msg.kind ~= "trial" then
      exhausted = true
      return nil
    end
    return msg.config
  end
  local function sink(rec) send(mpi, 0, {kind = "result", record = rec}) end
  driver.run(pool, source, sink, nil, function() return exhausted end)
  send(mpi, 0, {kind = "bye"})
  local msg = receive(mpi, 0)
  return msg.records or {}
end

return mpi_driver
