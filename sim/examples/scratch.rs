use plan_model::{planner, topology::Topology, validate::parse_scenario, fault::Fault};
use plan_sim::run::*;
fn main() {
    let text = std::fs::read_to_string(std::env::args().nth(1).unwrap()).unwrap();
    let t = Topology::new(&parse_scenario(&text).unwrap());
    let plan = planner::generate(&t);
    let e = Engine::new(&t, &plan, Recording { events: true, downtime: true });
    let r = e.run(&[]);
    println!("{:?} {:?} halted {:?} {:?}", r.outcome, r.recoveries, r.halted_at, r.halt);
    for b in &r.broken { println!("BROKEN {} at {}: {}", b.invariant, b.step, b.why); }
    for b in &r.final_unavailable { println!("UNAVAIL {}: {}", b.invariant, b.why); }
    for u in &r.undeclared { println!("UNDECLARED {} {}: {}", u.step, u.invariant, u.why); }
    println!("{:?} dur {}", r.downtime, r.duration_s);
    let m2 = t.resolve("master-2").unwrap();
    let idx = plan.steps.iter().position(|s| s.id == "2.5").unwrap() as u16;
    let r = e.run(&[Injection { at: Point { step: idx, action: 1 }, fault: Fault::NodeDown { node: m2, lasts_s: None } }]);
    for ev in &r.events { if ev.clock_s > 0 && ev.step.starts_with('2') || ev.step.starts_with("R") || ev.kind != EventKind::Action { println!("{:>6} {:6} {:?} {} | {:?} | {:?} | {:?}", ev.clock_s, ev.step, ev.kind, ev.what, ev.changes, ev.flipped, ev.broke); } }
    println!("{:?} {:?}", r.outcome, r.recoveries);
    for b in &r.broken { println!("BROKEN {} at {}: {}", b.invariant, b.step, b.why); }
}
