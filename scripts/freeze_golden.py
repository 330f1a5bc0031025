import sys
from pathlib import Path
sys.path.insert(0, ".")
import traceflops
for trace in sorted(Path("traces").rglob("*.xplane.pb")):
    name = trace.parent.name if trace.name == "host.xplane.pb" else trace.name.replace(".xplane.pb", "")
    out = Path("tests/golden") / name
    target = trace.parent if trace.name == "host.xplane.pb" else trace
    res = traceflops.analyze(str(target))
    res.write(out)
    print(name, len(res.ops), list(res.extra_tables))
