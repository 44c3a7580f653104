//! `tally-hardware`: barcode scanners and UHF RFID readers on serial ports,
//! and the pure decoders under them (AIM identifiers, GS1 element strings,
//! EPC Tag Data Standard, RFID module frames).
