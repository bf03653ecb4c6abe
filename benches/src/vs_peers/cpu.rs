//! CPU time (user + system) of this process, of its reaped children, and of another process,
//! so that each cell can report the CPU a client spent per command.

use std::time::Duration;

/// CPU time consumed so far by this whole process (every thread), from `getrusage`.
pub(crate) fn this_process() -> Duration {
    rusage(libc::RUSAGE_SELF)
}

/// CPU time consumed so far by this process' children that have exited and been waited for
/// (the `redis-benchmark` runs), from `getrusage`.
pub(crate) fn reaped_children() -> Duration {
    rusage(libc::RUSAGE_CHILDREN)
}

fn rusage(who: libc::c_int) -> Duration {
    // SAFETY: getrusage writes into the struct we pass and reads nothing else; a zeroed
    // rusage is a valid value of the type.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(who, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// CPU time consumed so far by process `pid` (user + system, from `/proc/<pid>/stat`, in
/// clock ticks of usually 10 ms), or `None` when it cannot be read.
pub(crate) fn of_pid(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let hz = clock_ticks_per_sec()?;
    ticks(&stat).map(|t| Duration::from_secs_f64(t as f64 / hz))
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line. The command name (field 2)
/// is in parentheses and may contain spaces, so fields are counted after its closing `)`.
fn ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11); // field 3 is the first here
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn clock_ticks_per_sec() -> Option<f64> {
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then_some(hz as f64)
}

/// Microseconds of CPU per operation, `None` without operations.
pub(crate) fn micros_per_op(cpu: Duration, ops: u64) -> Option<f64> {
    (ops > 0).then(|| cpu.as_secs_f64() * 1e6 / ops as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let line = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    250 50 0 0 20 0 1 0 100 1000 10 18446744073709551615";
        assert_eq!(ticks(line), Some(300));
        assert_eq!(ticks("garbage"), None);
    }

    #[test]
    fn this_process_and_its_own_stat_agree_on_burnt_cpu() {
        let before = this_process();
        let started = std::time::Instant::now();
        let mut x = 0u64;
        while started.elapsed() < Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        assert!(this_process() > before);
        assert!(of_pid(std::process::id()).is_some());
        assert_eq!(micros_per_op(Duration::from_millis(3), 1000), Some(3.0));
        assert_eq!(micros_per_op(Duration::from_millis(3), 0), None);
    }
}
