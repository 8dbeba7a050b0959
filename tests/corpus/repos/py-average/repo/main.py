from stats import report

print(report([]))
