# gnuplot -e "mode='quick'" bench/plot.gp : repository bytes over nights, per tool.
if (!exists("mode")) mode = "quick"
set datafile separator ","
set terminal pngcairo size 900,500 noenhanced
set output "bench/results/".mode."-series.png"
set title "Repository size over nights (".mode.")"
set xlabel "night"
set ylabel "MB"
set key left top
tools = "kbvault kbvault-pk-order restic borg-default borg-small gzip kbvault-heavy restic-heavy"
plot for [t in tools] "< grep '^".t.",' bench/results/".mode."-series.csv" using 2:($4/1e6) with linespoints title t
