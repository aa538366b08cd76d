//! The demo's fixed event catalogue: ten events with ids "1001".."1010".

/// One event on the demo site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Event {
    /// Event id as it appears in URLs.
    pub id: &'static str,
    /// Shown on the page and returned by the API.
    pub title: &'static str,
    /// Ticket price in euro cents (so the JSON carries an exact decimal).
    pub price_cents: u32,
}

/// The catalogue; ids are consecutive so `demo_events()` and the index stay in step.
const EVENTS: [Event; 10] = [
    Event {
        id: "1001",
        title: "Midnight Orchestra",
        price_cents: 4500,
    },
    Event {
        id: "1002",
        title: "Harbor Lights Festival",
        price_cents: 3900,
    },
    Event {
        id: "1003",
        title: "The Quiet Comedians",
        price_cents: 2500,
    },
    Event {
        id: "1004",
        title: "Northern Jazz Night",
        price_cents: 5200,
    },
    Event {
        id: "1005",
        title: "Robot Football Final",
        price_cents: 6100,
    },
    Event {
        id: "1006",
        title: "Opera in the Park",
        price_cents: 7400,
    },
    Event {
        id: "1007",
        title: "Synthwave Sunrise",
        price_cents: 3300,
    },
    Event {
        id: "1008",
        title: "Chess Boxing Gala",
        price_cents: 2900,
    },
    Event {
        id: "1009",
        title: "Lantern Parade",
        price_cents: 1500,
    },
    Event {
        id: "1010",
        title: "Last Train Home Tour",
        price_cents: 8800,
    },
];

/// Every event, in id order.
pub(crate) fn all() -> &'static [Event] {
    &EVENTS
}

/// The event with this id, if the catalogue has one.
pub(crate) fn find(id: &str) -> Option<&'static Event> {
    EVENTS.iter().find(|e| e.id == id)
}

impl Event {
    /// Price as a JSON number in euros, e.g. 45.0.
    pub fn price(&self) -> f64 {
        f64::from(self.price_cents) / 100.0
    }

    /// Price as shown on the page, e.g. "EUR 45.00".
    pub fn price_label(&self) -> String {
        format!(
            "EUR {}.{:02}",
            self.price_cents / 100,
            self.price_cents % 100
        )
    }
}
