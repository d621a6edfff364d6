package cluster

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"

	"neutrino/cluster/tlsutil"
)

// Gossip identity. The keyring only says a node holds the gossip key, and
// with it any node could announce itself as chassis X (its name, tunnel
// IP, roles live in the metadata). With TLS on, a node signs what it
// announces with its TLS key and names the certificate that verifies it:
// the metadata carries the certificate's fingerprint ("cf") and, as its
// last key, the signature ("sg") over the node name, its advertised gossip
// address and the metadata before "sg". The certificate itself (about 500
// bytes, memberlist allows 512 of metadata) is fetched once per
// fingerprint from the member over memberlist's reliable user messages and
// checked against the cluster CA. A member is taken into Members() (and so
// counted as a server, a chassis or a gateway) only when its certificate
// is the CA's, names it, has the server role if it claims to be a server,
// and its signature holds; anything else is logged and counted
// (IdentityRejections), never seen by the loops that act on members.
//
// Binding the advertised address means a replayed announcement only
// works from the genuine node's own address. Older agents (no signature)
// are refused by a node with TLS on: a cluster turns TLS on all at once.

// Reliable user messages between agents (memberlist NotifyMsg).
const (
	msgCertRequest byte = 'q' // JSON certRequest: send me your certificate
	msgCert        byte = 'c' // the sender's certificate, DER
)

// identityContext separates these signatures from any other use of the key.
const identityContext = "neutrino-gossip-identity-v1\x00"

// sigKey is the signature's key, last in the metadata's JSON.
const sigKey = `,"sg":"`

// certRetry is how often a certificate still missing is asked for again.
const certRetry = 2 * time.Second

// errUnsigned means the metadata carries no signature.
var errUnsigned = errors.New("unsigned metadata")

// errCertPending means the member's certificate has not arrived yet.
var errCertPending = errors.New("cluster: member certificate not yet known")

type certRequest struct {
	Name string `json:"n"`
	Addr string `json:"a"`
}

// pendingMember is a gossip event held until its certificate arrives.
type pendingMember struct {
	node   memberlist.Node
	status MemberStatus
	fp     string
	asked  time.Time
}

// certFingerprint names a certificate in metadata: 16 bytes of its
// SHA-256, enough to pick a certificate (the signature and chain are the
// proof), short enough for the metadata limit.
func certFingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return base64.RawStdEncoding.EncodeToString(sum[:16])
}

// identityInit records this node's own certificate; nil without TLS.
func (c *Cluster) identityInit() error {
	b := c.cfg.TLS
	if b == nil {
		return nil
	}
	switch b.Cert.PrivateKey.(type) {
	case *ecdsa.PrivateKey, ed25519.PrivateKey:
	default:
		return fmt.Errorf("cluster: gossip identity needs an ECDSA or Ed25519 key, certificate of %s has %T", b.Name, b.Cert.PrivateKey)
	}
	c.certs = map[string]*x509.Certificate{}
	c.pending = map[string]*pendingMember{}
	c.rejected = map[string]string{}
	if err := b.VerifyPeer([]*x509.Certificate{b.Cert.Leaf}, "", ""); err != nil {
		return fmt.Errorf("cluster: own certificate: %w", err)
	}
	c.ownFP = certFingerprint(b.Cert.Certificate[0])
	c.certs[c.ownFP] = b.Cert.Leaf
	return nil
}

// identitySigned returns the message a node signs for its metadata body.
func identitySigned(name, addr string, body []byte) []byte {
	msg := make([]byte, 0, len(identityContext)+len(name)+len(addr)+2+len(body))
	msg = append(msg, identityContext...)
	msg = append(msg, name...)
	msg = append(msg, 0)
	msg = append(msg, addr...)
	msg = append(msg, 0)
	return append(msg, body...)
}

// signMeta appends the signature to encoded metadata (EncodeMeta's).
func (c *Cluster) signMeta(buf []byte) ([]byte, error) {
	if len(buf) < 2 || buf[len(buf)-1] != '}' {
		return nil, errors.New("cluster: sign metadata: not a JSON object")
	}
	self := c.selfGossipAddr()
	sig, err := signIdentity(c.cfg.TLS.Cert.PrivateKey.(crypto.Signer), identitySigned(c.cfg.NodeName, self, buf))
	if err != nil {
		return nil, fmt.Errorf("cluster: sign metadata: %w", err)
	}
	out := append(bytes.Clone(buf[:len(buf)-1]), sigKey...)
	out = append(out, base64.RawStdEncoding.EncodeToString(sig)...)
	return append(out, '"', '}'), nil
}

// signIdentity signs msg: Ed25519 as is, ECDSA over SHA-256 as the fixed
// r||s form (64 bytes for P-256, not ASN.1's up to 72).
func signIdentity(key crypto.Signer, msg []byte) ([]byte, error) {
	switch k := key.(type) {
	case ed25519.PrivateKey:
		return ed25519.Sign(k, msg), nil
	case *ecdsa.PrivateKey:
		sum := sha256.Sum256(msg)
		r, s, err := ecdsa.Sign(rand.Reader, k, sum[:])
		if err != nil {
			return nil, err
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		out := make([]byte, 2*size)
		r.FillBytes(out[:size])
		s.FillBytes(out[size:])
		return out, nil
	}
	return nil, fmt.Errorf("unsupported key %T", key)
}

func verifyIdentity(pub any, msg, sig []byte) bool {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		return ed25519.Verify(k, msg, sig)
	case *ecdsa.PublicKey:
		size := (k.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*size {
			return false
		}
		sum := sha256.Sum256(msg)
		r, s := new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])
		return ecdsa.Verify(k, sum[:], r, s)
	}
	return false
}

// splitSignature separates signed metadata into the signed bytes (the
// metadata as EncodeMeta wrote it) and the signature.
func splitSignature(buf []byte) (body, sig []byte, err error) {
	i := bytes.LastIndex(buf, []byte(sigKey))
	if i < 0 || !bytes.HasSuffix(buf, []byte(`"}`)) || i+len(sigKey) > len(buf)-2 {
		return nil, nil, errUnsigned
	}
	sig, err = base64.RawStdEncoding.DecodeString(string(buf[i+len(sigKey) : len(buf)-2]))
	if err != nil {
		return nil, nil, fmt.Errorf("bad signature encoding: %w", err)
	}
	body = append(bytes.Clone(buf[:i]), '}')
	return body, sig, nil
}

// checkIdentity verifies a member's announcement against its certificate
// (see the comment at the top of this file): nil when it holds,
// errCertPending when the certificate must be fetched first.
func (c *Cluster) checkIdentity(n *memberlist.Node, meta NodeMeta) error {
	body, sig, err := splitSignature(n.Meta)
	if err != nil {
		return err
	}
	if meta.CertFP == "" {
		return errors.New("metadata names no certificate")
	}
	c.mu.Lock()
	cert := c.certs[meta.CertFP]
	c.mu.Unlock()
	if cert == nil {
		return errCertPending
	}
	// The chain was checked when the certificate was taken in (takeCert);
	// per event only what can change: the time, and whom it names.
	if now := time.Now(); now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
		return fmt.Errorf("%w: expired or not yet valid", tlsutil.ErrUntrusted)
	}
	name, role := tlsutil.Identity(cert)
	if name != n.Name {
		return fmt.Errorf("%w: want %q, certificate names %q", tlsutil.ErrWrongName, n.Name, name)
	}
	if meta.Role == RoleServer && role != tlsutil.RoleServer {
		return fmt.Errorf("%w: a server's claims need a server certificate, %s has %q", tlsutil.ErrWrongRole, name, role)
	}
	if !verifyIdentity(cert.PublicKey, identitySigned(n.Name, n.Address(), body), sig) {
		return errors.New("bad signature over metadata and address")
	}
	return nil
}

// admit decides whether a gossip event may update Members(): always
// without TLS; with it, once the member's identity checks. An event
// waiting for a certificate is kept and replayed when it arrives.
func (c *Cluster) admit(n *memberlist.Node, meta NodeMeta, status MemberStatus) bool {
	if c.cfg.TLS == nil {
		return true
	}
	err := c.checkIdentity(n, meta)
	if errors.Is(err, errUnsigned) && c.cfg.AllowUnsignedGossip {
		err = nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if errors.Is(err, errCertPending) {
		p := &pendingMember{node: copyNode(n), status: status, fp: meta.CertFP}
		if old := c.pending[n.Name]; old != nil && old.fp == p.fp {
			p.asked = old.asked
		}
		c.pending[n.Name] = p
		if time.Since(p.asked) > certRetry/2 {
			p.asked = time.Now()
			go c.askCert(p.node)
		}
		return false
	}
	delete(c.pending, n.Name)
	if err != nil {
		c.refuseLocked(n, err)
		return false
	}
	delete(c.rejected, n.Name)
	return true
}

// refuseLocked counts a refused event and logs it once per reason; c.mu
// is held.
func (c *Cluster) refuseLocked(n *memberlist.Node, err error) {
	c.identityRejections.Add(1)
	if reason := err.Error(); c.rejected[n.Name] != reason {
		c.rejected[n.Name] = reason
		c.log.Warn("member refused: its gossip identity does not check", "member", n.Name, "addr", n.Address(), "err", err)
	}
}

func copyNode(n *memberlist.Node) memberlist.Node {
	cp := *n
	cp.Addr = bytes.Clone(n.Addr)
	cp.Meta = bytes.Clone(n.Meta)
	return cp
}

// selfGossipAddr is this node's address as members see it (what
// memberlist.Node.Address answers for it): the IP in canonical form.
func (c *Cluster) selfGossipAddr() string {
	return net.JoinHostPort(net.ParseIP(c.addrs.advertiseHost).String(), strconv.Itoa(c.addrs.gossipPort))
}

// askCert asks a member for its certificate, to this node's address.
func (c *Cluster) askCert(n memberlist.Node) {
	if c.gossip == nil {
		return
	}
	self := c.selfGossipAddr()
	req, _ := json.Marshal(certRequest{Name: c.cfg.NodeName, Addr: self})
	if err := c.gossip.SendReliable(&n, append([]byte{msgCertRequest}, req...)); err != nil {
		c.log.Debug("cannot ask member for its certificate", "member", n.Name, "err", err)
	}
}

// retryCerts asks again for certificates still missing (reconnectLoop).
func (c *Cluster) retryCerts() {
	if c.cfg.TLS == nil {
		return
	}
	var ask []memberlist.Node
	c.mu.Lock()
	for _, p := range c.pending {
		if time.Since(p.asked) >= certRetry {
			p.asked = time.Now()
			ask = append(ask, p.node)
		}
	}
	c.mu.Unlock()
	for _, n := range ask {
		c.askCert(n)
	}
}

// handleUserMsg serves certificate requests and takes in certificates.
// memberlist calls it from its network goroutines: replies go out from
// their own goroutine.
func (c *Cluster) handleUserMsg(buf []byte) {
	if c.cfg.TLS == nil || len(buf) == 0 {
		return
	}
	switch buf[0] {
	case msgCertRequest:
		var req certRequest
		if err := json.Unmarshal(buf[1:], &req); err != nil || req.Name == "" {
			return
		}
		host, port, err := net.SplitHostPort(req.Addr)
		p, perr := strconv.ParseUint(port, 10, 16)
		ip := net.ParseIP(host)
		if err != nil || perr != nil || ip == nil {
			return
		}
		to := memberlist.Node{Name: req.Name, Addr: ip, Port: uint16(p)}
		der := c.cfg.TLS.Cert.Certificate[0]
		go func() {
			if err := c.gossip.SendReliable(&to, append([]byte{msgCert}, der...)); err != nil {
				c.log.Debug("cannot send certificate", "to", req.Name, "err", err)
			}
		}()
	case msgCert:
		// memberlist may reuse buf once this returns; a certificate keeps
		// pointing into its DER.
		c.takeCert(bytes.Clone(buf[1:]))
	}
}

// takeCert keeps a certificate of the cluster CA and replays the events
// that waited for it.
func (c *Cluster) takeCert(der []byte) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return
	}
	// Only the CA's certificates are kept, so the cache is bounded by what
	// the CA issued; the name is checked per member in checkIdentity.
	fp := certFingerprint(der)
	if err := c.cfg.TLS.VerifyPeer([]*x509.Certificate{cert}, "", ""); err != nil {
		// The members that named it are refused: their certificate will
		// not check however often it is asked for.
		c.mu.Lock()
		defer c.mu.Unlock()
		for name, p := range c.pending {
			if p.fp == fp {
				delete(c.pending, name)
				c.refuseLocked(&p.node, err)
			}
		}
		return
	}
	var replay []*pendingMember
	c.mu.Lock()
	c.certs[fp] = cert
	for name, p := range c.pending {
		if p.fp == fp {
			replay = append(replay, p)
			delete(c.pending, name)
		}
	}
	c.mu.Unlock()
	for _, p := range replay {
		c.observe(&p.node, p.status)
	}
}

// RefusedMembers names the members whose last announcement was refused
// for its identity, with the reason, ordered by name.
func (c *Cluster) RefusedMembers() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.rejected)
}

// IdentityRejections counts gossip events refused because the member's
// identity did not check (wrong CA, another name or role, bad signature).
func (c *Cluster) IdentityRejections() uint64 { return c.identityRejections.Load() }
