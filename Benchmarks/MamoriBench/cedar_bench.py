"""Times Cedar (through cedarpy) on policies and requests written by mamori-bench.

Usage: cedar_bench.py POLICIES.cedar ENTITIES.json REQUESTS.json REPEAT
Prints one JSON object: per-request median seconds per call, the trivial-policy baseline (the
binding's fixed cost per call, measured the same way), and each request's decision.
The policy set and entities are parsed once, as handles, before any timing.
"""
import json
import statistics
import sys
import time

import cedarpy

policies_text, entities_text, requests_path, repeat = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
policies = cedarpy.PolicySet.from_str(open(policies_text).read())
entities = cedarpy.Entities.from_json_str(open(entities_text).read())
requests = json.load(open(requests_path))

trivial_policies = cedarpy.PolicySet.from_str("permit(principal, action, resource);")
trivial_entities = cedarpy.Entities.from_json_str("[]")


def per_call(request, policy_set, entity_set):
    samples = []
    decision = None
    for _ in range(repeat):
        start = time.perf_counter_ns()
        result = cedarpy.is_authorized(request, policy_set, entity_set)
        samples.append((time.perf_counter_ns() - start) / 1e9)
        decision = result.decision
    return statistics.median(samples), decision


times, decisions, baseline = [], [], []
for request in requests:
    seconds, decision = per_call(request, policies, entities)
    times.append(seconds)
    decisions.append("allow" if decision == cedarpy.Decision.Allow else "deny")
    baseline.append(per_call(request, trivial_policies, trivial_entities)[0])

print(json.dumps({"times": times, "baseline": baseline, "decisions": decisions}))
