//! The terminal the live tables draw on (its size) and the trend sparklines in them: shared by
//! `watch` and `watch --pprof`.

/// A sparkline of `samples` scaled between their minimum and maximum.
pub fn sparkline(samples: impl IntoIterator<Item = usize>) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let v: Vec<usize> = samples.into_iter().collect();
    let (Some(&lo), Some(&hi)) = (v.iter().min(), v.iter().max()) else {
        return String::new();
    };
    v.iter()
        .map(|&x| {
            if hi == lo {
                BARS[if hi == 0 { 0 } else { 3 }]
            } else {
                BARS[(x - lo) * (BARS.len() - 1) / (hi - lo)]
            }
        })
        .collect()
}

/// Columns and rows of the terminal on stdout, if it is one.
pub(crate) fn terminal_size() -> Option<(usize, usize)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize into `ws`, a valid, writable one.
    let rc = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) };
    (rc == 0 && ws.ws_col > 0 && ws.ws_row > 0)
        .then_some((usize::from(ws.ws_col), usize::from(ws.ws_row)))
}

/// Columns of the terminal on stdout, if it is one.
pub(crate) fn terminal_width() -> Option<usize> {
    terminal_size().map(|(w, _)| w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparkline_scales_between_min_and_max() {
        assert_eq!(sparkline([1, 2, 3, 4, 5, 6, 7, 8]), "▁▂▃▄▅▆▇█");
        assert_eq!(sparkline([0, 0, 0]), "▁▁▁");
        assert_eq!(sparkline([5, 5]), "▄▄");
        assert_eq!(sparkline(Vec::<usize>::new()), "");
        assert_eq!(sparkline([10, 20]), "▁█");
    }
}
