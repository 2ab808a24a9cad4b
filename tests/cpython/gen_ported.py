#!/usr/bin/env python3
# Writes tests/cpython/PORTED.md from CPython 3.11's test files (libpython3.11-testsuite), the
# Catch2 case names of the [cpython_*] tags, and the statuses below, for the tests that have no
# passing case. Run from the worktree root after building build/gcc:
#   python3 tests/cpython/gen_ported.py
import os, re, subprocess, sys
D='/usr/lib/python3.11/test/test_asyncio/'
def tests(fname):
    out=[]; cls=None
    for line in open(D+fname):
        m=re.match(r'^class (\w+)',line)
        if m: cls=m.group(1); continue
        m=re.match(r'^    (?:async )?def (test_\w+)',line)
        if m: out.append((cls,m.group(1)))
    return out

BIN = 'build/gcc/tests/ringloop_tests'
def names(tag):
    out = subprocess.run([BIN, f'[cpython_{tag}]', '--list-test-names-only'], capture_output=True, text=True, env=dict(os.environ, RINGLOOP_CPYTHON_KNOWN='1')).stdout
    return [l.strip() for l in out.splitlines() if l.strip()]
def known(tag):
    out = subprocess.run([BIN, f'[cpython_{tag}][cpython_known]', '--list-test-names-only'], capture_output=True, text=True, env=dict(os.environ, RINGLOOP_CPYTHON_KNOWN='1')).stdout
    return set(l.strip() for l in out.splitlines() if l.strip())

PREFIX = {
  'LockTests': 'Lock ', 'EventTests': 'Event ', 'ConditionTests': 'Condition ', 'SemaphoreTests': 'Semaphore ',
  'QueueBasicTests': 'Queue ', 'QueueGetTests': 'Queue ', 'QueuePutTests': 'Queue ', 'LifoQueueTests': 'LifoQueue ',
  'PriorityQueueTests': 'PriorityQueue ', '_QueueJoinTestMixin': 'Queue/LifoQueue/PriorityQueue JoinTests ',
}

REPR = 'not applicable: repr() text is Python machinery'
NA, PEND, DIFF, FAIL = 'not applicable', 'pending', 'differs by design', 'fails: ringloop bug'
S = {}  # (file, Class, test) or (file, test) -> (status, note)
def s(f, t, status, note='', cls=None): S[(f, cls, t)] = (status, note)

f = 'test_waitfor.py'
s(f, 'test_wait_for_blocking', NA, '`timeout=None`: ringloop\'s `wait_for` always takes a duration; with no deadline it is a plain `co_await`')
s(f, 'test_cancel_blocking_wait_for', NA, 'the same with `timeout=None`; the 60 s variant is ported (test_cancel_wait_for)')
s(f, 'test_wait_for_self_cancellation', DIFF, 'README names table, `wait_for` row ("Python 3.12\'s rules"): 3.12 dropped this test; the case asserts 3.12\'s outcome (the inner\'s 42 wins; `python3.12` agrees)')

f = 'test_timeouts.py'
for t in ['test_repr_active', 'test_repr_expired', 'test_repr_finished', 'test_repr_disabled']: s(f, t, NA, 'repr() text is Python machinery')

f = 'test_taskgroups.py'
s(f, 'test_taskgroup_20', NA, 'a `KeyboardInterrupt` (BaseException) escaping a TaskGroup unwrapped: C++ has no BaseException/Exception split; ringloop\'s `KeyboardInterrupt` is thrown by `run()` only')
s(f, 'test_taskgroup_task_name', PEND, 'needs task names (`create_task(coro, name)`)')
s(f, 'test_taskgroup_task_context', NA, 'contextvars')

f = 'test_locks.py'
for c in ['LockTests', 'ConditionTests', 'SemaphoreTests']: s(f, 'test_repr', NA, 'repr() text', cls=c)
s(f, 'test_repr', NA, 'repr() text', cls='EventTests')
s(f, 'test_lock', NA, '`await lock` raising TypeError: in C++ a Lock is not awaitable at all (a compile error)', cls='LockTests')
s(f, 'test_lock_doesnt_accept_loop_parameter', NA, 'the removed `loop=` keyword argument', cls='LockTests')
s(f, 'test_lock_by_with_statement', NA, '`with await lock` raising TypeError: Python syntax', cls='LockTests')
s(f, 'test_ambiguous_loops', NA, 'sets the private `_loop`; ringloop\'s loop binding is tested in `tests/sync.cpp` ("bound to another event loop")', cls='ConditionTests')
s(f, 'test_semaphore', NA, '`await sem` raising TypeError (a compile error in C++)', cls='SemaphoreTests')
s(f, 'test_semaphore_value', NA, '`Semaphore(-1)` raising ValueError: the value is a `std::size_t`', cls='SemaphoreTests')
s(f, 'test_cancel_race', DIFF, 'README names table, `Lock` row (release() hands the lock to the first waiter, so `locked()` stays true until it runs): the check that the lock is free after one pass is left out; the rest is ported', cls='LockTests')
s(f, 'test_notify', DIFF, 'README names table, `Lock` and `Condition` rows (a notified waiter joins the lock\'s queue; release() hands the lock on): the third waiter finishes one loop pass later than in asyncio; the case checks both passes', cls='ConditionTests')
s(f, 'test_notify_all', DIFF, 'as Condition.test_notify: the second waiter finishes one loop pass later', cls='ConditionTests')

f = 'test_queues.py'
for t in ['test_repr', 'test_str', 'test_generic_alias']: s(f, t, NA, 'repr()/str()/typing machinery', cls='QueueBasicTests')
s(f, 'test_format', NA, 'private `_format()`', cls='_QueueJoinTestMixin')
s(f, 'test_get_with_putters', NA, 'appends a hand-made future to the private `_putters`', cls='QueueGetTests')
s(f, 'test_float_maxsize', NA, '`maxsize=1.3`: maxsize is a `std::size_t`', cls='QueuePutTests')

f = 'test_tasks.py'
for t in ['test_generic_alias', 'test_task_del_collect', 'test_task_class', 'test_ensure_future_coroutine',
          'test_ensure_future_future', 'test_ensure_future_task', 'test_ensure_future_awaitable', 'test_ensure_future_neither',
          'test_ensure_future_error_msg', 'test_get_stack', 'test_task_repr', 'test_task_repr_autogenerated',
          'test_task_repr_name_not_str', 'test_task_repr_wait_for', 'test_exception_chaining_after_await',
          'test_exception_chaining_after_await_with_context_cycle', 'test_cancel_traceback_for_future_result',
          'test_cancel_traceback_for_future_exception', 'test_log_traceback', 'test_iscoroutinefunction',
          'test_coroutine_non_gen_function', 'test_coroutine_non_gen_function_return_future', 'test_log_destroyed_pending_task',
          'test_tb_logger_not_called_after_cancel', 'test_task_source_traceback', 'test_exception_traceback',
          'test_create_task_with_noncoroutine', 'test_create_task_with_asynclike_function', 'test_context_1', 'test_context_2',
          'test_context_3', 'test_context_4', 'test_context_5', 'test_context_6', 'test_subclasses_ctask_cfuture',
          'test_refleaks_in_task___init__', 'test_del__log_destroy_pending_segfault', 'test_foobar',
          'test__register_task_1', 'test__register_task_2', 'test__register_task_3', 'test__enter_task', 'test__enter_task_failure',
          'test__leave_task', 'test__leave_task_failure1', 'test__leave_task_failure2', 'test__unregister_task',
          'test__unregister_task_not_registered', 'test_future_subclass', 'test_asyncio_module_compiled', 'test_env_var_debug',
          'test_as_completed_coroutine_without_loop', 'test_as_completed_coroutine_use_running_loop',
          'test_shield_coroutine_without_loop', 'test_shield_coroutine_use_running_loop', 'test_shield_coroutine_use_global_loop',
          'test_constructor_empty_sequence_without_loop', 'test_constructor_empty_sequence_use_running_loop',
          'test_constructor_empty_sequence_use_global_loop', 'test_constructor_without_loop', 'test_constructor_use_running_loop',
          'test_constructor_use_global_loop', 'test_set_result_causes_invalid_state', 'test_set_exception_causes_invalid_state',
          'test_task_set_methods', 'test_step_result_future', 'test_stop_while_run_in_complete', 'test_other_loop_future',
          'test_as_completed_invalid_args', 'test_wait_invalid_args', 'test_create_task_with_async_function']:
    s(f, t, NA, 'Python machinery (repr, tracebacks, contextvars, ensure_future, C/Python Task classes, loop arguments, type checks, private registration, Future methods on a Task)')
for t in ['test_task_cancel_message_getter', 'test_task_cancel_message_setter', 'test_cancel_with_message_then_future_result',
          'test_cancel_with_message_then_future_exception', 'test_cancellation_exception_context',
          'test_cancel_with_message_before_starting_task']:
    s(f, t, PEND, 'needs `Task::cancel(msg)`')
for t in ['test_current_task', 'test_current_task_with_interleaving_tasks', 'test_current_task_no_running_loop',
          'test_current_task_no_running_loop_implicit', 'test_current_task_with_implicit_loop']:
    s(f, t, PEND, 'needs `current_task()`')
for t in ['test_bare_create_named_task', 'test_get_coro']:
    s(f, t, PEND, 'needs task names / `get_coro`')
for t in ['test_cancel_inner_future', 'test_cancel_both_task_and_inner_future', 'test_task_cancel_waiter_future']:
    s(f, t, PEND, 'needs `Future` (a future cancelled by hand)')

HEADER = '''# CPython's asyncio tests, ported

Every test function of CPython 3.11's `Lib/test/test_asyncio/` files `test_waitfor.py`,
`test_timeouts.py`, `test_taskgroups.py`, `test_locks.py`, `test_queues.py`, `test_tasks.py` and
`test_pep492.py` (Debian's `libpython3.11-testsuite` installs them in
`/usr/lib/python3.11/test/test_asyncio/`), and what became of it here:

- **ported**: the Catch2 case that does what the test does (its name starts with the test's name;
  tags `[cpython]` and `[cpython_<file>]`), on virtual time. Python futures that a test only sets
  are `Event`s; a future that is done already is a finished `Task`; `asyncio.current_task()` is the
  `Task` handle the test keeps; `time.sleep(d)` (a blocked loop) is `Loop::advance(d)`.
- **differs by design**: ringloop does otherwise on purpose and the README says so (the row is
  named); the case asserts ringloop's documented behaviour, with asyncio's in a comment.
- **fails: ringloop bug**: the case asserts asyncio's behaviour and fails today; the row says
  what differs. It is written `CPYTHON_KNOWN_FAILURE(name, "[cpython][.cpython_known]...")`
  (`port.hpp`): it exists only when `RINGLOOP_CPYTHON_KNOWN=1` is in the environment, because
  Catch2 2.13 runs even hidden cases under a spec made only of exclusions (`"~[slow]"`), and the
  suite must stay green. Once the bug is fixed it becomes a plain `TEST_CASE`.
- **pending**: needs an API ringloop does not have yet (being added: `Task::cancel(msg)`, names,
  `Future`, `Barrier`, `current_task()`); no case yet.
- **not applicable**: Python machinery (repr, contextvars, tracebacks, loop arguments, private
  attributes, type checks), one line on why.
- **not done**: not ported yet; nothing is claimed about it.

    ringloop_tests "[cpython]"                                    # the ports that pass
    RINGLOOP_CPYTHON_KNOWN=1 ringloop_tests "[cpython_known]"     # the ports that fail: bugs

The table is written by `python3 tests/cpython/gen_ported.py` from the test files and the case
names (each ported row names its case). Checks of private state (`len(lock._waiters)`) are left
out of the ports, the rest kept. `test_run_coroutine_threadsafe` runs in real time and is also
tagged `[thread]` (a worker thread holds the virtual clock).


'''

s(f, 'test_sleep_cancel', NA, 'checks the private TimerHandle behind the sleep; that a cancel ends a sleep in the kernel at once is `tests/task.cpp`')
s(f, 'test_wait_with_iterator_of_tasks', NA, 'an iterator instead of a set: `wait` takes a vector (test_wait is the same case)')
for t in ['test_as_completed_reverse_wait', 'test_as_completed_concurrent']:
    s(f, t, PEND, 'awaits two of as_completed\'s placeholders at once: needs the fix of concurrent `AsCompleted::next()` (it trips an assertion today, issue #20)')
s(f, 'test_cancel_gather_1', NA, 'the `_GatheringFuture` refusing `cancel()` once its children are done: ringloop\'s gather is an awaiter, not a future')
s(f, 'test_cancel_gather_2', PEND, 'its subject is the message of `cancel(msg)`: needs `Task::cancel(msg)`')
s(f, 'test_error_in_call_soon', NA, 'monkeypatches `loop.call_soon` to fail inside Task.__init__')
s(f, 'test_constructor_heterogenous_futures', NA, 'futures of two loops given to one gather; ringloop refuses a task of another loop at the await (`std::logic_error`, `tests/task.cpp`)')
s(f, 'test_constructor_homogenous_futures', NA, 'the gathering future\'s `_loop`')
s(f, 'test_issue46672', NA, 'a dict given to gather raising TypeError: a compile error in C++')
s(f, 'test_one_exception', DIFF, 'README names table, `gather` row (on the first failure the other children are cancelled and awaited; asyncio leaves them running): the case checks the error and that c, d, e end cancelled')
s(f, 'test_one_cancellation', DIFF, 'README names table, `gather` row: the other children are cancelled; and asyncio\'s gathering future ends not-cancelled holding a CancelledError, where here the awaiting task sees CancelledError raised (and catches it)')
f = 'test_pep492.py'
s(f, 'test_context_manager_with_await', NA, '`with await lock` raising TypeError: Python syntax', cls='LockTests')
s(f, 'test_readline', NA, '`async for` over a StreamReader fed by hand (`feed_data`); ringloop\'s `Stream` reads a socket (`read_until` is `tests/stream.cpp`)', cls='StreamReaderTests')
for t in ['test_iscoroutine', 'test_iscoroutinefunction', 'test_debug_mode_manages_coroutine_origin_tracking',
          'test_types_coroutine', 'test_task_print_stack']:
    s(f, t, NA, 'Python coroutine machinery (iscoroutine, origin tracking, types.coroutine, get_stack)', cls='CoroutineTests')
s(f, 'test_double_await', 'ported', 'in its C++ form: a second await of the same `Coro` (a Coro moved into a task is gone from the caller)', cls='CoroutineTests')
s('test_waitfor.py', 'test_wait_for_waits_for_task_cancellation', 'ported', 'the check of the TimeoutError\'s `__context__` left out')
s('test_waitfor.py', 'test_wait_for_waits_for_task_cancellation_w_timeout_0', 'ported', 'the check of `__context__` left out')
s('test_tasks.py', 'test_sleep_zero', 'ported', '`sleep(0, result=10)`: ringloop\'s sleep returns nothing')
s('test_tasks.py', 'test_sleep', 'ported', '`sleep(d, result)`: ringloop\'s sleep returns nothing')
s('test_tasks.py', 'test_run_coroutine_threadsafe_with_exception', 'not done', 'would hand an exception\'s message string across threads, the clang-tsan report of issue #20 (libstdc++\'s shared string); the same path is `tests/threadsafe.cpp` "run_coroutine_threadsafe returns a future of the coroutine\'s result"')
s('test_tasks.py', 'test_run_coroutine_threadsafe_with_timeout', NA, '`future.result(timeout)` then `future.cancel()` cancelling the task: `run_coroutine_threadsafe` returns a `std::future`, which has no cancel')
s('test_tasks.py', 'test_run_coroutine_threadsafe_task_cancelled', PEND, 'the coroutine cancels its own task: needs `current_task()`')
s('test_tasks.py', 'test_run_coroutine_threadsafe_task_factory_exception', NA, 'loop task factories')

def md_escape(x): return x.replace('|', '\\|')

def table(fname, tag, title):
    cases = names(tag); bad = known(tag)
    rows = []; counts = {}
    for cls, t in tests(fname):
        key = (fname, cls, t) if (fname, cls, t) in S else (fname, None, t)
        pre = cls + ' ' if fname == 'test_pep492.py' else PREFIX.get(cls, '')
        match = [c for c in cases if c.startswith(pre + t + ':') or c.startswith(pre + t + ' (')]
        label = f'{cls}.{t}' if cls else t
        status, note = S.get(key, (None, ''))
        if match:
            where = '; '.join(f'"{m}"' for m in match)
            if status in (FAIL, DIFF):
                st = 'fails: ringloop bug (`[.cpython_known]`)' if status == FAIL else 'differs by design'
                if status == FAIL: assert all(m in bad for m in match), (t, match)
                rows.append((label, st, note + f' &mdash; case: {where}'))
            else:
                assert not any(m in bad for m in match), t
                st = 'ported'
                rows.append((label, st, where + (f' ({note})' if note else '')))
        else:
            if status is None and cls == 'BarrierTests':
                st, note = 'pending', 'needs `Barrier`'
            elif status is None:
                st, note = 'not done', 'not ported in this pass'
            else:
                st = status if status != PEND else 'pending'
                if status in (FAIL,): raise SystemExit(f'{t}: FAIL without a case')
            rows.append((label, st, note))
        counts[rows[-1][1].split(':')[0].split(' (')[0]] = counts.get(rows[-1][1].split(':')[0].split(' (')[0], 0) + 1
    SUMMARY.append((fname, counts, len(rows)))
    out = [f'## {fname} ({title})', '', ', '.join(f'{k}: {v}' for k, v in sorted(counts.items())) + f' (of {len(rows)})', '',
           '| test | status | case, or why not |', '| --- | --- | --- |']
    out += [f'| {md_escape(a)} | {b} | {md_escape(c)} |' for a, b, c in rows]
    return '\n'.join(out) + '\n'

SUMMARY = []
parts = []
for fname, tag, title in [('test_waitfor.py', 'waitfor', '`[cpython_waitfor]`, tests/cpython/test_waitfor.cpp'),
                          ('test_timeouts.py', 'timeouts', '`[cpython_timeouts]`, test_timeouts.cpp'),
                          ('test_taskgroups.py', 'taskgroups', '`[cpython_taskgroups]`, test_taskgroups.cpp'),
                          ('test_locks.py', 'locks', '`[cpython_locks]`, test_locks.cpp'),
                          ('test_queues.py', 'queues', '`[cpython_queues]`, test_queues.cpp'),
                          ('test_tasks.py', 'tasks', '`[cpython_tasks]`, test_tasks.cpp'),
                          ('test_pep492.py', 'pep492', '`[cpython_pep492]`, test_pep492.cpp')]:
    parts.append(table(fname, tag, title))
kinds = ['ported', 'differs by design', 'fails', 'pending', 'not applicable', 'not done']
summary = ['| file | tests | ' + ' | '.join(kinds) + ' |', '|' + ' --- |' * (len(kinds) + 2)]
for fname, counts, n in SUMMARY:
    summary.append(f'| {fname} | {n} | ' + ' | '.join(str(counts.get(k, 0)) for k in kinds) + ' |')
parts.insert(0, HEADER + '\n'.join(summary) + '\n')
open('tests/cpython/PORTED.md', 'w').write('\n'.join(parts))
