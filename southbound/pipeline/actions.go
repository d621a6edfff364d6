package pipeline

import "neutrino/southbound/openflow"

// ctZone is the conntrack zone of the port in register reg: its low 16
// bits (the port's ofport).
func ctZone(reg int) openflow.Subfield { return openflow.Bits(openflow.FieldReg(reg), 0, 16) }

// ctRecirc tracks the packet in the zone of the port in reg and continues
// in table with ct_state set.
func ctRecirc(reg int, table uint8) openflow.CT {
	return openflow.CT{ZoneSrc: ctZone(reg), Recirc: true, Table: table}
}

// ctCommit commits the packet's connection in the zone of the port in reg.
func ctCommit(reg int) openflow.CT {
	return openflow.CT{Commit: true, ZoneSrc: ctZone(reg)}
}

// move copies the whole of field src into dst.
func move(src, dst openflow.Field) openflow.Move { return openflow.MoveField(src, dst) }

// moveBits copies n bits of src at srcOfs into dst at dstOfs.
func moveBits(src openflow.Field, srcOfs uint16, dst openflow.Field, dstOfs, n uint16) openflow.Move {
	return openflow.Move{Src: src, Dst: dst, SrcOfs: srcOfs, DstOfs: dstOfs, NBits: n}
}
