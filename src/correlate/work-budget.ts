/**
 * The joint search costs far more than the common case, so it runs on a
 * budget per second of the correlator's clock: WORK_PER_SECOND units
 * (candidates² × positions per chain search, SPACE_WORK per step term built;
 * at most about half a second of CPU), after which calls are decided alone
 * until the next second (counted: joint.overBudget). A storm of thousands of
 * identical calls cannot stall the datagram path. Above
 * JOINT_MAX_EVENTS_PER_SECOND events a second (this second or the one before)
 * the datagram path itself needs the CPU: every call is decided alone.
 */

const WORK_PER_SECOND = 120_000_000;
/**
 * The joint search costs milliseconds per call in a storm; at 100k datagrams/s of twin calls it
 * took the bridge past one core (bench/run.mjs: 13-19 µs per datagram instead of 7, a third of
 * the datagrams dropped by the kernel). Storms of real applications are far below it (the
 * captures: about 100 events/s).
 */
const JOINT_MAX_EVENTS_PER_SECOND = 10_000;
/** What building one step term of a chain space costs, in search units. */
export const SPACE_WORK = 10;

export class WorkBudget {
  /** Work since `since`, and events in this second and the one before. */
  private work = 0;
  private since = -Infinity;
  private events = 0;
  private eventsBefore = 0;

  /** One event arrived. */
  event(): void {
    this.events++;
  }

  /** `units` of search work were done. */
  charge(units: number): void {
    this.work += units;
  }

  /** The budget of the second `now` falls in is used up, or the event rate is above the cut. */
  over(now: number): boolean {
    if (now - this.since >= 1000) {
      this.eventsBefore = now - this.since < 2000 ? this.events : 0;
      this.since = now;
      this.work = 0;
      this.events = 0;
    }
    return this.work > WORK_PER_SECOND || this.events > JOINT_MAX_EVENTS_PER_SECOND || this.eventsBefore > JOINT_MAX_EVENTS_PER_SECOND;
  }
}
