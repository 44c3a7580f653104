-- The order of live links opened at every hub process: each link takes
-- the next value when it opens, so "the newest link of a store wins"
-- compares these, not the hosts' clocks (crate::link::LiveStore::order).
CREATE SEQUENCE hub_link_order;
