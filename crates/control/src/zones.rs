//! The cluster's zones and the drills run on them (spec §6): a zone outage (its instances die
//! at once and it takes no launches) and a zonal shift (the load balancers send it no new
//! traffic), each until an end time or until an operator ends it.
//!
//! Sans-IO like the rest of the control plane: the runtime feeds operator requests and time,
//! and applies the [`ZoneEvent`]s it reads with [`ZoneDrills::poll_event`] to the groups
//! (outages) and the data plane (shifts).

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use crate::time::Time;

/// The longest drill accepted: AWS caps a zonal shift at three days.
pub const MAX_DRILL_DURATION: Duration = Duration::from_secs(3 * 24 * 3600);

/// A kind of zone drill.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ZoneDrill {
    /// Every instance in the zone is killed and the zone takes no launches.
    Outage,
    /// No new traffic to targets in the zone (AWS zonal shift); instances keep running.
    Shift,
}

impl ZoneDrill {
    /// The word used in messages: `outage` or `shift`.
    pub fn as_str(self) -> &'static str {
        match self {
            ZoneDrill::Outage => "outage",
            ZoneDrill::Shift => "shift",
        }
    }
}

impl fmt::Display for ZoneDrill {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A drill starting or ending, for the runtime to apply.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ZoneEvent {
    /// The drill began in `zone`.
    Started {
        /// The zone.
        zone: String,
        /// Which drill.
        drill: ZoneDrill,
        /// When it ends unless ended early.
        until: Time,
    },
    /// The drill in `zone` is over.
    Ended {
        /// The zone.
        zone: String,
        /// Which drill.
        drill: ZoneDrill,
        /// Ended by an operator before its end time (otherwise it expired).
        early: bool,
    },
}

/// One zone and the drills in force on it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ZoneStatus {
    /// The zone's name from the config.
    pub name: String,
    /// End of the outage in progress, if any.
    pub outage_until: Option<Time>,
    /// End of the zonal shift in progress, if any.
    pub shift_until: Option<Time>,
}

impl ZoneStatus {
    fn until(&mut self, drill: ZoneDrill) -> &mut Option<Time> {
        match drill {
            ZoneDrill::Outage => &mut self.outage_until,
            ZoneDrill::Shift => &mut self.shift_until,
        }
    }
}

/// Why a drill request was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ZoneError {
    /// The zone is not one of the cluster's.
    #[error("no zone named `{0}` (the cluster's zones are listed by GET /v1/zones)")]
    UnknownZone(String),
    /// A drill must last a while, and at most [`MAX_DRILL_DURATION`].
    #[error("the {drill} must last between 1ms and 72h, not {duration:?}")]
    BadDuration {
        /// Which drill.
        drill: ZoneDrill,
        /// What was asked for.
        duration: Duration,
    },
    /// There is no such drill in progress to end.
    #[error("zone {zone} has no {drill} in progress")]
    NotActive {
        /// The zone.
        zone: String,
        /// Which drill.
        drill: ZoneDrill,
    },
}

/// The cluster's zones with their drills.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct ZoneDrills {
    zones: Vec<ZoneStatus>,
    events: VecDeque<ZoneEvent>,
}

impl ZoneDrills {
    /// The cluster's zones, none in a drill.
    pub fn new(zones: impl IntoIterator<Item = String>) -> Self {
        ZoneDrills {
            zones: zones
                .into_iter()
                .map(|name| ZoneStatus {
                    name,
                    outage_until: None,
                    shift_until: None,
                })
                .collect(),
            events: VecDeque::new(),
        }
    }

    /// Follows a reloaded zone list: kept zones keep their drills, new ones start available,
    /// and the drills of removed zones end (as if by an operator).
    pub fn set_zones(&mut self, zones: impl IntoIterator<Item = String>) {
        let mut old = std::mem::take(&mut self.zones);
        for name in zones {
            let kept = old
                .iter()
                .position(|z| z.name == name)
                .map(|i| old.remove(i));
            self.zones.push(kept.unwrap_or(ZoneStatus {
                name,
                outage_until: None,
                shift_until: None,
            }));
        }
        for mut gone in old {
            for drill in [ZoneDrill::Outage, ZoneDrill::Shift] {
                if gone.until(drill).take().is_some() {
                    self.events.push_back(ZoneEvent::Ended {
                        zone: gone.name.clone(),
                        drill,
                        early: true,
                    });
                }
            }
        }
    }

    /// Every zone in config order.
    pub fn zones(&self) -> impl Iterator<Item = &ZoneStatus> {
        self.zones.iter()
    }

    /// One zone, or `None` when the cluster has no such zone.
    pub fn zone(&self, name: &str) -> Option<&ZoneStatus> {
        self.zones.iter().find(|z| z.name == name)
    }

    /// Zones under a zonal shift right now, for the data plane.
    pub fn shifted_zones(&self) -> impl Iterator<Item = &str> {
        self.zones
            .iter()
            .filter(|z| z.shift_until.is_some())
            .map(|z| z.name.as_str())
    }

    /// Zones in an outage right now.
    pub fn zones_in_outage(&self) -> impl Iterator<Item = &str> {
        self.zones
            .iter()
            .filter(|z| z.outage_until.is_some())
            .map(|z| z.name.as_str())
    }

    /// Starts a drill on `zone` lasting `duration`. A drill of the same kind already in
    /// progress gets the new end time (AWS `UpdateZonalShift`), without starting again.
    pub fn start(
        &mut self,
        now: Time,
        zone: &str,
        drill: ZoneDrill,
        duration: Duration,
    ) -> Result<ZoneStatus, ZoneError> {
        if duration.is_zero() || duration > MAX_DRILL_DURATION {
            return Err(ZoneError::BadDuration { drill, duration });
        }
        let z = self
            .zones
            .iter_mut()
            .find(|z| z.name == zone)
            .ok_or_else(|| ZoneError::UnknownZone(zone.to_string()))?;
        let until = now + duration;
        let slot = z.until(drill);
        let started = slot.is_none();
        *slot = Some(until);
        let status = z.clone();
        if started {
            self.events.push_back(ZoneEvent::Started {
                zone: zone.to_string(),
                drill,
                until,
            });
        }
        Ok(status)
    }

    /// Ends the drill on `zone` now (the `DELETE`s of spec §6).
    pub fn end(&mut self, zone: &str, drill: ZoneDrill) -> Result<ZoneStatus, ZoneError> {
        let z = self
            .zones
            .iter_mut()
            .find(|z| z.name == zone)
            .ok_or_else(|| ZoneError::UnknownZone(zone.to_string()))?;
        if z.until(drill).take().is_none() {
            return Err(ZoneError::NotActive {
                zone: zone.to_string(),
                drill,
            });
        }
        let status = z.clone();
        self.events.push_back(ZoneEvent::Ended {
            zone: zone.to_string(),
            drill,
            early: true,
        });
        Ok(status)
    }

    /// Ends the drills whose time is up.
    pub fn handle_timeout(&mut self, now: Time) {
        for z in &mut self.zones {
            for drill in [ZoneDrill::Outage, ZoneDrill::Shift] {
                if z.until(drill).is_some_and(|t| t <= now) {
                    *z.until(drill) = None;
                    self.events.push_back(ZoneEvent::Ended {
                        zone: z.name.clone(),
                        drill,
                        early: false,
                    });
                }
            }
        }
    }

    /// When the next drill ends.
    pub fn poll_timeout(&self) -> Option<Time> {
        self.zones
            .iter()
            .flat_map(|z| [z.outage_until, z.shift_until])
            .flatten()
            .min()
    }

    /// The next drill start or end for the runtime to apply.
    pub fn poll_event(&mut self) -> Option<ZoneEvent> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drills() -> ZoneDrills {
        ZoneDrills::new(["az-a".to_string(), "az-b".to_string()])
    }

    #[test]
    fn a_drill_starts_once_and_ends_at_its_time() {
        let mut d = drills();
        let s = d
            .start(
                Time::ZERO,
                "az-a",
                ZoneDrill::Outage,
                Duration::from_secs(30),
            )
            .unwrap();
        assert_eq!(s.outage_until, Some(Time::from_millis(30_000)));
        assert!(matches!(
            d.poll_event(),
            Some(ZoneEvent::Started {
                drill: ZoneDrill::Outage,
                ..
            })
        ));
        // Again: a new end time, no second start.
        d.start(
            Time::from_millis(1000),
            "az-a",
            ZoneDrill::Outage,
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(d.poll_event(), None);
        assert_eq!(d.poll_timeout(), Some(Time::from_millis(6000)));
        assert_eq!(d.zones_in_outage().collect::<Vec<_>>(), ["az-a"]);
        d.handle_timeout(Time::from_millis(5999));
        assert_eq!(d.poll_event(), None);
        d.handle_timeout(Time::from_millis(6000));
        assert_eq!(
            d.poll_event(),
            Some(ZoneEvent::Ended {
                zone: "az-a".into(),
                drill: ZoneDrill::Outage,
                early: false
            })
        );
        assert_eq!(d.poll_timeout(), None);
    }

    #[test]
    fn shifts_end_early_and_bad_requests_change_nothing() {
        let mut d = drills();
        d.start(
            Time::ZERO,
            "az-b",
            ZoneDrill::Shift,
            Duration::from_secs(30),
        )
        .unwrap();
        assert_eq!(d.shifted_zones().collect::<Vec<_>>(), ["az-b"]);
        let _ = d.poll_event();
        assert_eq!(
            d.end("az-b", ZoneDrill::Outage),
            Err(ZoneError::NotActive {
                zone: "az-b".into(),
                drill: ZoneDrill::Outage
            })
        );
        assert!(d.end("az-b", ZoneDrill::Shift).is_ok());
        assert!(matches!(
            d.poll_event(),
            Some(ZoneEvent::Ended { early: true, .. })
        ));
        assert_eq!(d.shifted_zones().count(), 0);
        assert_eq!(
            d.start(Time::ZERO, "az-z", ZoneDrill::Shift, Duration::from_secs(1)),
            Err(ZoneError::UnknownZone("az-z".into()))
        );
        for bad in [Duration::ZERO, MAX_DRILL_DURATION + Duration::from_secs(1)] {
            assert!(matches!(
                d.start(Time::ZERO, "az-a", ZoneDrill::Outage, bad),
                Err(ZoneError::BadDuration { .. })
            ));
        }
        assert_eq!(d.poll_event(), None);
        assert_eq!(d.poll_timeout(), None);
    }

    #[test]
    fn a_reloaded_zone_list_keeps_drills_and_ends_those_of_removed_zones() {
        let mut d = drills();
        for zone in ["az-a", "az-b"] {
            d.start(Time::ZERO, zone, ZoneDrill::Shift, Duration::from_secs(30))
                .unwrap();
        }
        while d.poll_event().is_some() {}
        d.set_zones(["az-b".to_string(), "az-c".to_string()]);
        let names: Vec<&str> = d.zones().map(|z| z.name.as_str()).collect();
        assert_eq!(names, ["az-b", "az-c"]);
        assert_eq!(d.shifted_zones().collect::<Vec<_>>(), ["az-b"]);
        assert_eq!(
            d.poll_event(),
            Some(ZoneEvent::Ended {
                zone: "az-a".into(),
                drill: ZoneDrill::Shift,
                early: true
            })
        );
        assert_eq!(d.poll_event(), None);
    }
}
