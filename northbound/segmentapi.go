package northbound

import (
	"crypto/sha1"
	"fmt"
	"net/http"

	"neutrino/fsm"
)

// Segments (Neutron's segment extension), read-only: a Neutrino network
// has exactly one segment, its provider attributes, so the segments are
// derived from the networks and carry a name-based id. Creating, updating
// or deleting a segment (multi-segment networks, routed provider networks)
// is not supported: those methods answer 405. Policy as Neutron's
// defaults: segments are admin-only (a member lists none).

var segmentAttrs = map[string]attrSpec{
	"id":               {Kind: attrString},
	"network_id":       {Kind: attrString},
	"name":             {Kind: attrString},
	"description":      {Kind: attrString},
	"network_type":     {Kind: attrString},
	"physical_network": {Kind: attrString},
	"segmentation_id":  {Kind: attrInt},
	"revision_number":  {Kind: attrInt},
	"created_at":       {Kind: attrString},
	"updated_at":       {Kind: attrString},
}

func (s *Server) segmentRoutes() {
	s.neutron("GET /v2.0/segments", s.listSegments)
	s.neutron("GET /v2.0/segments/{id}", s.showSegment)
}

// segmentID is the stable id of a network's segment (version 5 style), so
// every server names it alike without storing it.
func segmentID(networkID string) string {
	sum := sha1.Sum([]byte("neutrino-segment/" + networkID))
	sum[6] = sum[6]&0x0f | 0x50
	sum[8] = sum[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", sum[0:4], sum[4:6], sum[6:8], sum[8:10], sum[10:16])
}

func renderSegment(n *fsm.Network) map[string]any {
	var segID, physnet any
	if n.NetworkType != fsm.NetTypeFlat {
		segID = n.SegmentationID
	}
	if n.PhysicalNetwork != "" {
		physnet = n.PhysicalNetwork
	}
	return map[string]any{
		"id":               segmentID(n.ID),
		"network_id":       n.ID,
		"name":             nil,
		"description":      "",
		"network_type":     n.NetworkType,
		"physical_network": physnet,
		"segmentation_id":  segID,
		"revision_number":  n.RevisionNumber,
		"created_at":       n.CreatedAt,
		"updated_at":       n.UpdatedAt,
	}
}

func (s *Server) listSegments(w http.ResponseWriter, r *http.Request) error {
	lq, err := parseListQuery(r.URL.Query(), "segments", segmentAttrs)
	if err != nil {
		return err
	}
	var objs []map[string]any
	if identityFrom(r.Context()).Admin {
		for _, n := range s.view(w).Networks() {
			objs = append(objs, renderSegment(n))
		}
	}
	return writeList(w, r, lq, "segments", objs)
}

func (s *Server) showSegment(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	v := s.view(w)
	if identityFrom(r.Context()).Admin {
		// Segment ids are derived, so finding one scans the networks:
		// segments are read rarely and by operators.
		for _, n := range v.Networks() {
			if segmentID(n.ID) == id {
				return writeShow(w, r, "segment", "segments", segmentAttrs, renderSegment(n))
			}
		}
	}
	return newError(http.StatusNotFound, "SegmentNotFound", "Segment %s could not be found.", id)
}
