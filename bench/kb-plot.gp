# gnuplot -e "mode='quick'" bench/kb-plot.gp: the figures of bench/kb.sh.
if (!exists("mode")) mode = "quick"
set datafile separator ","
set terminal pngcairo size 900,500 noenhanced
set output "bench/results/kb-".mode."-series.png"
set title "Repository bytes over nights, evolving knowledge base (".mode.")"
set xlabel "night"
set ylabel "MB"
set key left top
tools = "kbvault-native kbvault-pg_dump kbvault restic borg-default borg-small gzip"
plot for [t in tools] "< grep '^".t.",' bench/results/kb-".mode."-series.csv" using 2:($4/1e6) with linespoints title t
set output "bench/results/kb-".mode."-bars.png"
set terminal pngcairo size 1100,450 noenhanced
set multiplot layout 1,3
set style data histograms
set style fill solid 0.8 border -1
set boxwidth 0.8
set xtics rotate by -30
set key off
set xlabel ""
set title "ingest MB/s"
set ylabel "MB/s"
plot "bench/results/kb-".mode."-bars.csv" using 2:xtic(1)
set title "restore MB/s (last night)"
plot "bench/results/kb-".mode."-bars.csv" using 3:xtic(1)
set title "peak RSS while ingesting"
set ylabel "MiB"
plot "bench/results/kb-".mode."-bars.csv" using 4:xtic(1)
unset multiplot
