# SPDX-License-Identifier: LGPL-2.1-only
# chart.gp: two panels from report.sh's data files: throughput as a ratio
# to the raw-file limit, and the servers' CPU time per I/O.
# gnuplot -e "datafile='..'; cpufile='..'; outfile='..'; fsname='xfs'; ncol=N; ncpu=M" chart.gp
set terminal svg size 1100,900 dynamic font "sans,11" background rgb "white"
set output outfile
set multiplot layout 2,1
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set key outside right top vertical
set grid ytics
set xtics nomirror
set yrange [0:*]

# bars above 1.5 (the no-I/O server on allocating writes) are clipped
set title "Result / limit (fio on the raw file) on ".fsname.", 1.0 = the limit, clipped at 1.5"
set ylabel "ratio to the limit"
set yrange [0:1.5]
plot for [i=2:ncol] datafile using i:xtic(1) title columnheader(i) lt (i - 1)

set title "Server CPU time per I/O (µs, lower is better)"
set ylabel "CPU µs per I/O (log)"
set logscale y
set datafile missing "?"
set yrange [*:*]
# (same colour per contender as above: this file has no limit column)
plot for [i=2:ncpu] cpufile using i:xtic(1) title columnheader(i) lt i
unset multiplot
