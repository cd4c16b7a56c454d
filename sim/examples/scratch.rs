use plan_model::{planner, topology::Topology, validate::parse_scenario};
use plan_sim::explore::*;
fn main() {
    let text = std::fs::read_to_string(std::env::args().nth(1).unwrap()).unwrap();
    let depth: u8 = std::env::args().nth(2).map(|d| d.parse().unwrap()).unwrap_or(1);
    let t = Topology::new(&parse_scenario(&text).unwrap());
    let plan = planner::generate(&t);
    let start = std::time::Instant::now();
    let r = check(&t, &plan, CheckOptions { depth });
    println!("{:?} in {:?}", r.figures, start.elapsed());
    for p in &r.phases {
        println!("{:?}", p);
    }
    for v in &r.violations {
        println!(
            "VIOLATION {} [{}] at {}: {} | {:?} ({} schedules)",
            v.invariant,
            v.schedule.len(),
            v.step,
            v.why,
            v.schedule.iter().map(|p| format!("{}@{}+{}", p.description, p.step, p.after_action)).collect::<Vec<_>>(),
            v.schedules
        );
    }
    for f in &r.findings {
        println!("FINDING {:?}", f);
    }
    for e in &r.exposures {
        println!("EXPOSURE {:?}", e);
    }
}
