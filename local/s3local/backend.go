package s3local

import (
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/johannesboyne/gofakes3"
)

// backend is the gofakes3 backend of the server, in memory or in a data
// directory. Its index of every bucket (what conditions and listings are
// answered from) is kept under one mutex, held for map look-ups and
// updates only. A write's body is taken in before anything is locked.
//
// In memory, an object's body is a slice that nothing changes once it is
// stored: a write or delete of the same key puts another slice in the
// index, and a reader goes on with the one it was given. A write's
// condition (If-None-Match, If-Match) is checked and the index updated
// under the mutex, so two writers of one key cannot both pass the check.
//
// In a data directory, each object is one file, its body followed by its
// metadata, written to a temporary file and renamed into place. A reader
// opens the file once and reads from that open file to the end, so a
// write or a delete of the same key meanwhile changes nothing it reads:
// the old file lives on until its last reader closes it. A write's
// condition is checked, the file renamed into place and the index updated
// under a lock of that key alone (a delete takes it too): a rename over
// an existing file can take a millisecond (ext4 starts writing the new
// file out), which writers of other keys do not wait for. Layout: LOCK
// (held while a server uses the directory), tmp/ (bodies being written),
// buckets/{bucket}/{xx}/{sha256 of key} (the objects, xx the hash's first
// two hex digits).
type backend struct {
	dir  string // "" in memory
	lock *os.File
	log  *slog.Logger

	mu      sync.Mutex
	buckets map[string]*bucketIndex
	keys    map[string]*keyLock // by bucket + "/" + key, while held or awaited
}

// keyLock orders the writes and deletes of one key in a data directory.
type keyLock struct {
	sync.Mutex
	refs int // holders and waiters, under backend.mu
}

// lockKey takes the lock of a key and returns what releases it.
func (d *backend) lockKey(bucket, key string) (unlock func()) {
	k := bucket + "/" + key
	d.mu.Lock()
	l := d.keys[k]
	if l == nil {
		l = &keyLock{}
		d.keys[k] = l
	}
	l.refs++
	d.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		d.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(d.keys, k)
		}
		d.mu.Unlock()
	}
}

// bucketIndex is the in-memory index of one bucket, kept under
// backend.mu: what conditions and listings are answered from.
type bucketIndex struct {
	created time.Time
	objects map[string]entry
	sorted  []string // the keys of objects in order; nil until a listing needs them
}

type entry struct {
	size     int64
	hash     []byte // MD5 of the body: the ETag
	modified time.Time
	// In memory: the body and the metadata, never changed once stored.
	body []byte
	meta map[string]string
}

// diskMeta is what an object's file carries after its body, as JSON.
type diskMeta struct {
	Key      string            `json:"key"`
	ETag     string            `json:"etag"` // hex MD5 of the body
	Modified time.Time         `json:"modified"`
	Meta     map[string]string `json:"meta"`
}

// diskMagic ends every object file, after the metadata's length.
const diskMagic = "s3local1"

var _ gofakes3.Backend = (*backend)(nil)

// inMemory returns a backend that keeps objects in memory.
func inMemory(log *slog.Logger) *backend {
	return &backend{log: log, buckets: map[string]*bucketIndex{}, keys: map[string]*keyLock{}}
}

// openDir opens (or makes) the data directory dir, takes its lock and
// indexes what it holds.
func openDir(dir string, log *slog.Logger) (*backend, error) {
	for _, d := range []string{dir, filepath.Join(dir, "tmp"), filepath.Join(dir, "buckets")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("s3local: data dir: %w", err)
		}
	}
	lock, err := lockDir(filepath.Join(dir, "LOCK"))
	if err != nil {
		return nil, fmt.Errorf("s3local: data dir %s (is another smoothcast using it?): %w", dir, err)
	}
	d := &backend{dir: dir, lock: lock, log: log, buckets: map[string]*bucketIndex{}, keys: map[string]*keyLock{}}
	if err := d.load(); err != nil {
		_ = lock.Close()
		return nil, err
	}
	return d, nil
}

// load clears tmp/ (writes a previous run did not finish) and indexes
// every bucket.
func (d *backend) load() error {
	tmp := filepath.Join(d.dir, "tmp")
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("s3local: clear %s: %w", tmp, err)
	}
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return fmt.Errorf("s3local: %w", err)
	}
	dirs, err := os.ReadDir(filepath.Join(d.dir, "buckets"))
	if err != nil {
		return fmt.Errorf("s3local: %w", err)
	}
	for _, bd := range dirs {
		if !bd.IsDir() {
			continue
		}
		info, err := bd.Info()
		if err != nil {
			return fmt.Errorf("s3local: %w", err)
		}
		b := &bucketIndex{created: info.ModTime(), objects: map[string]entry{}}
		root := filepath.Join(d.dir, "buckets", bd.Name())
		err = filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return err
			}
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			m, size, err := readMeta(f)
			if err == nil && path != d.objectPath(bd.Name(), m.Key) {
				err = fmt.Errorf("holds key %q, which belongs elsewhere", m.Key)
			}
			if err != nil {
				// Not one of ours, or damaged: leave it, say so.
				d.log.Warn("embedded S3: skipping a file that is not an object", "file", path, "err", err)
				return nil
			}
			hash, _ := hex.DecodeString(m.ETag)
			b.objects[m.Key] = entry{size: size, hash: hash, modified: m.Modified}
			return nil
		})
		if err != nil {
			return fmt.Errorf("s3local: index %s: %w", root, err)
		}
		d.buckets[bd.Name()] = b
	}
	return nil
}

// Close releases the data directory's lock.
func (d *backend) Close() error {
	if d.lock == nil {
		return nil
	}
	return d.lock.Close()
}

// objectPath is where the object at key of bucket lives.
func (d *backend) objectPath(bucket, key string) string {
	sum := sha256.Sum256([]byte(key))
	name := hex.EncodeToString(sum[:])
	return filepath.Join(d.dir, "buckets", bucket, name[:2], name)
}

// readMeta reads the metadata at the end of an object's file and returns
// it with the body's size.
func readMeta(f *os.File) (diskMeta, int64, error) {
	var m diskMeta
	st, err := f.Stat()
	if err != nil {
		return m, 0, err
	}
	var tail [4 + len(diskMagic)]byte
	if st.Size() < int64(len(tail)) {
		return m, 0, errors.New("too short")
	}
	if _, err := f.ReadAt(tail[:], st.Size()-int64(len(tail))); err != nil {
		return m, 0, err
	}
	if string(tail[4:]) != diskMagic {
		return m, 0, errors.New("no object trailer")
	}
	n := int64(binary.BigEndian.Uint32(tail[:4]))
	size := st.Size() - int64(len(tail)) - n
	if size < 0 {
		return m, 0, errors.New("metadata longer than the file")
	}
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, size); err != nil {
		return m, 0, err
	}
	if err := json.Unmarshal(buf, &m); err != nil {
		return m, 0, fmt.Errorf("metadata: %w", err)
	}
	return m, size, nil
}

// bucket returns the index of name; the caller holds d.mu.
func (d *backend) bucket(name string) (*bucketIndex, error) {
	b := d.buckets[name]
	if b == nil {
		return nil, gofakes3.BucketNotFound(name)
	}
	return b, nil
}

// ListBuckets lists the buckets.
func (d *backend) ListBuckets() ([]gofakes3.BucketInfo, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]gofakes3.BucketInfo, 0, len(d.buckets))
	for _, name := range slices.Sorted(maps.Keys(d.buckets)) {
		out = append(out, gofakes3.BucketInfo{Name: name, CreationDate: gofakes3.NewContentTime(d.buckets[name].created)})
	}
	return out, nil
}

// ListBucket lists a page of a bucket's keys in order, after page.Marker,
// as S3 does: the keys that start with the prefix, those with the
// delimiter after it rolled up into one common prefix each (which counts
// as one key).
func (d *backend) ListBucket(name string, prefix *gofakes3.Prefix, page gofakes3.ListBucketPage) (*gofakes3.ObjectList, error) {
	if prefix == nil {
		prefix = &gofakes3.Prefix{}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	b, err := d.bucket(name)
	if err != nil {
		return nil, err
	}
	if b.sorted == nil {
		b.sorted = slices.Sorted(maps.Keys(b.objects))
	}
	keys := b.sorted
	i := sort.SearchStrings(keys, prefix.Prefix)
	if page.HasMarker {
		i = max(i, sort.Search(len(keys), func(i int) bool { return keys[i] > page.Marker }))
	}
	objects := gofakes3.NewObjectList()
	for count := int64(0); i < len(keys) && strings.HasPrefix(keys[i], prefix.Prefix); {
		key, last := keys[i], i // last: the last key this entry covers
		rest := key[len(prefix.Prefix):]
		if j := strings.Index(rest, prefix.Delimiter); prefix.HasDelimiter && j >= 0 {
			common := key[:len(prefix.Prefix)+j+len(prefix.Delimiter)]
			objects.AddPrefix(common)
			for last+1 < len(keys) && strings.HasPrefix(keys[last+1], common) {
				last++
			}
		} else {
			e := b.objects[key]
			objects.Add(&gofakes3.Content{
				Key:          key,
				ETag:         gofakes3.FormatETag(e.hash),
				Size:         e.size,
				LastModified: gofakes3.NewContentTime(e.modified.UTC()),
			})
		}
		i = last + 1
		if count++; page.MaxKeys > 0 && count >= page.MaxKeys {
			if i < len(keys) && strings.HasPrefix(keys[i], prefix.Prefix) {
				objects.IsTruncated = true
				objects.NextMarker = keys[last]
			}
			break
		}
	}
	return objects, nil
}

// CreateBucket makes an empty bucket.
func (d *backend) CreateBucket(name string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.buckets[name] != nil {
		return gofakes3.ResourceError(gofakes3.ErrBucketAlreadyExists, name)
	}
	if d.dir != "" {
		if err := os.Mkdir(filepath.Join(d.dir, "buckets", name), 0o755); err != nil {
			return err
		}
	}
	d.buckets[name] = &bucketIndex{created: time.Now(), objects: map[string]entry{}}
	return nil
}

// BucketExists says whether the bucket exists.
func (d *backend) BucketExists(name string) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.buckets[name] != nil, nil
}

// DeleteBucket removes an empty bucket.
func (d *backend) DeleteBucket(name string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	b, err := d.bucket(name)
	if err != nil {
		return err
	}
	if len(b.objects) > 0 {
		return gofakes3.ResourceError(gofakes3.ErrBucketNotEmpty, name)
	}
	return d.removeBucket(name)
}

// ForceDeleteBucket removes a bucket and everything in it.
func (d *backend) ForceDeleteBucket(name string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := d.bucket(name); err != nil {
		return err
	}
	return d.removeBucket(name)
}

// removeBucket removes a bucket's files and index; the caller holds d.mu.
func (d *backend) removeBucket(name string) error {
	if d.dir != "" {
		if err := os.RemoveAll(filepath.Join(d.dir, "buckets", name)); err != nil {
			return err
		}
	}
	delete(d.buckets, name)
	return nil
}

// HeadObject returns an object's metadata.
func (d *backend) HeadObject(bucket, key string) (*gofakes3.Object, error) {
	obj, err := d.GetObject(bucket, key, nil)
	if err != nil {
		return nil, err
	}
	_ = obj.Contents.Close()
	obj.Contents = http.NoBody
	return obj, nil
}

// GetObject returns the object's body as stored (in memory) or as the
// file that it opens holds (in a directory): what is written or deleted
// at the key meanwhile changes nothing it reads.
func (d *backend) GetObject(bucket, key string, rangeRequest *gofakes3.ObjectRangeRequest) (obj *gofakes3.Object, err error) {
	if d.dir == "" {
		return d.getFromMemory(bucket, key, rangeRequest)
	}
	if ok, _ := d.BucketExists(bucket); !ok {
		return nil, gofakes3.BucketNotFound(bucket)
	}
	f, err := os.Open(d.objectPath(bucket, key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, gofakes3.KeyNotFound(key)
	} else if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
		}
	}()
	m, size, err := readMeta(f)
	if err != nil {
		return nil, fmt.Errorf("s3local: %s/%s: %w", bucket, key, err)
	}
	if m.Key != key {
		return nil, gofakes3.KeyNotFound(key)
	}
	rng, err := rangeRequest.Range(size)
	if err != nil {
		return nil, err
	}
	start, length := int64(0), size
	if rng != nil {
		start, length = rng.Start, rng.Length
	}
	hash, _ := hex.DecodeString(m.ETag)
	return &gofakes3.Object{
		Name:     key,
		Metadata: m.Meta,
		Size:     size,
		Hash:     hash,
		Range:    rng,
		Contents: &fileReader{SectionReader: io.NewSectionReader(f, start, length), f: f},
	}, nil
}

func (d *backend) getFromMemory(bucket, key string, rangeRequest *gofakes3.ObjectRangeRequest) (*gofakes3.Object, error) {
	d.mu.Lock()
	b, err := d.bucket(bucket)
	var e entry
	var ok bool
	if err == nil {
		e, ok = b.objects[key]
	}
	d.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, gofakes3.KeyNotFound(key)
	}
	rng, err := rangeRequest.Range(e.size)
	if err != nil {
		return nil, err
	}
	body := e.body
	if rng != nil {
		body = body[rng.Start : rng.Start+rng.Length]
	}
	return &gofakes3.Object{
		Name:     key,
		Metadata: e.meta,
		Size:     e.size,
		Hash:     e.hash,
		Range:    rng,
		Contents: io.NopCloser(bytes.NewReader(body)),
	}, nil
}

// fileReader reads a section of an open file and closes the file.
type fileReader struct {
	*io.SectionReader
	f *os.File
}

func (r *fileReader) Close() error { return r.f.Close() }

// PutObject takes the body in (into memory, or a temporary file), then,
// if the conditions hold, puts it in place (in the index, or renamed to
// the object's file). It replaces the object whole, metadata included,
// as S3 does.
func (d *backend) PutObject(bucket, key string, meta map[string]string, input io.Reader, size int64, conditions *gofakes3.PutConditions) (gofakes3.PutObjectResult, error) {
	var result gofakes3.PutObjectResult
	// A write the conditions already refuse is refused before its body
	// is read; they are checked again when it is put in place.
	if err := d.check(bucket, key, conditions); err != nil {
		return result, err
	}
	if d.dir == "" {
		return result, d.putInMemory(bucket, key, meta, input, size, conditions)
	}
	tmp, err := os.CreateTemp(filepath.Join(d.dir, "tmp"), "put-*")
	if err != nil {
		return result, err
	}
	renamed := false
	defer func() {
		_ = tmp.Close()
		if !renamed {
			_ = os.Remove(tmp.Name())
		}
	}()
	hash := md5.New()
	n, err := io.Copy(io.MultiWriter(tmp, hash), input)
	if err != nil {
		return result, err
	}
	if n != size {
		return result, gofakes3.ErrIncompleteBody
	}
	now := time.Now()
	m := diskMeta{Key: key, ETag: hex.EncodeToString(hash.Sum(nil)), Modified: now, Meta: meta}
	trailer, err := json.Marshal(m)
	if err != nil {
		return result, err
	}
	trailer = binary.BigEndian.AppendUint32(trailer, uint32(len(trailer)))
	trailer = append(trailer, diskMagic...)
	if _, err := tmp.Write(trailer); err != nil {
		return result, err
	}
	if err := tmp.Close(); err != nil {
		return result, err
	}
	path := d.objectPath(bucket, key)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return result, err
	}
	unlock := d.lockKey(bucket, key)
	defer unlock()
	if err := d.check(bucket, key, conditions); err != nil {
		return result, err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return result, err
	}
	renamed = true
	d.mu.Lock()
	defer d.mu.Unlock()
	b, err := d.bucket(bucket)
	if err != nil {
		return result, err // removed meanwhile, with the file
	}
	d.setLocked(b, key, entry{size: size, hash: hash.Sum(nil), modified: now})
	return result, nil
}

func (d *backend) putInMemory(bucket, key string, meta map[string]string, input io.Reader, size int64, conditions *gofakes3.PutConditions) error {
	body, err := gofakes3.ReadAll(input, size)
	if err != nil {
		return err
	}
	hash := md5.Sum(body)
	d.mu.Lock()
	defer d.mu.Unlock()
	b, err := d.bucket(bucket)
	if err != nil {
		return err
	}
	if err := checkLocked(b, key, conditions); err != nil {
		return err
	}
	d.setLocked(b, key, entry{size: size, hash: hash[:], modified: time.Now(), body: body, meta: meta})
	return nil
}

// setLocked puts e at key in the index; the caller holds d.mu.
func (d *backend) setLocked(b *bucketIndex, key string, e entry) {
	if _, ok := b.objects[key]; !ok {
		b.sorted = nil
	}
	b.objects[key] = e
}

// check checks a write's conditions against the object at key now.
func (d *backend) check(bucket, key string, conditions *gofakes3.PutConditions) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	b, err := d.bucket(bucket)
	if err != nil {
		return err
	}
	return checkLocked(b, key, conditions)
}

// checkLocked checks a write's conditions as gofakes3's other backends
// do (gofakes3.CheckPutConditions); the caller holds d.mu.
func checkLocked(b *bucketIndex, key string, conditions *gofakes3.PutConditions) error {
	if conditions == nil {
		return nil
	}
	e, ok := b.objects[key]
	return gofakes3.CheckPutConditions(conditions, &gofakes3.ConditionalObjectInfo{Exists: ok, Hash: e.hash})
}

// DeleteObject removes an object; removing one that is not there is not
// an error, as in S3. Readers that opened it read it to the end.
func (d *backend) DeleteObject(bucket, key string) (gofakes3.ObjectDeleteResult, error) {
	return gofakes3.ObjectDeleteResult{}, d.delete(bucket, key)
}

// DeleteMulti removes objects.
func (d *backend) DeleteMulti(bucket string, keys ...string) (gofakes3.MultiDeleteResult, error) {
	var result gofakes3.MultiDeleteResult
	if ok, _ := d.BucketExists(bucket); !ok {
		return result, gofakes3.BucketNotFound(bucket)
	}
	for _, key := range keys {
		if err := d.delete(bucket, key); err != nil {
			d.log.Error("embedded S3: delete failed", "bucket", bucket, "key", key, "err", err)
			result.Error = append(result.Error, gofakes3.ErrorResult{Code: gofakes3.ErrInternal, Message: gofakes3.ErrInternal.Message(), Key: key})
			continue
		}
		result.Deleted = append(result.Deleted, gofakes3.ObjectID{Key: key})
	}
	return result, nil
}

// delete removes an object: its file first, under the key's lock, then
// its entry in the index.
func (d *backend) delete(bucket, key string) error {
	if d.dir != "" {
		unlock := d.lockKey(bucket, key)
		defer unlock()
		if ok, _ := d.BucketExists(bucket); !ok {
			return gofakes3.BucketNotFound(bucket)
		}
		if err := os.Remove(d.objectPath(bucket, key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	b, err := d.bucket(bucket)
	if err != nil {
		return err
	}
	if _, ok := b.objects[key]; ok {
		delete(b.objects, key)
		b.sorted = nil
	}
	return nil
}

// CopyObject copies an object (read as any reader reads it, written anew).
func (d *backend) CopyObject(srcBucket, srcKey, dstBucket, dstKey string, meta map[string]string) (gofakes3.CopyObjectResult, error) {
	return gofakes3.CopyObject(d, srcBucket, srcKey, dstBucket, dstKey, meta)
}
