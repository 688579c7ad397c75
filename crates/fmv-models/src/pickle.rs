//! A restricted unpickler for PyTorch state dicts: it builds values and never runs code, and
//! its memory is bounded by the pickle's size.
//!
//! It knows the opcodes `torch.save` writes (protocol 2, and the few of protocols 3–4 a newer
//! pickler may choose), resolves globals to names without importing anything, and shares
//! memoised values instead of copying them (a pickle that fetches one value many times builds
//! no more than it reads). A string is never longer than the bytes left, every count is checked,
//! and any other opcode is an error naming it and its offset.
//!
//! Three bounds keep a hostile pickle harmless:
//! - at most [`MAX_VALUES`] values are built, whatever the pickle's length;
//! - immutable values (tuples, calls, persistent ids) nest at most [`MAX_DEPTH`] deep, so
//!   dropping one never overflows the stack;
//! - lists and dicts, the values a pickle can mutate after it has shared them (and so nest
//!   without end, or inside themselves), are owned by the [`Pickle`] and emptied when it is
//!   dropped, which breaks every cycle; code that walks values limits its own depth.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// The most values one pickle may build (a ResNet-152's state dict builds about 20 000).
pub(crate) const MAX_VALUES: usize = 2_000_000;

/// The deepest an immutable value may nest (a state dict's are 4 deep).
pub(crate) const MAX_DEPTH: u32 = 256;

/// A list's or dict's items: shared (the memo holds them too) and mutable (items are added
/// after the container is made).
pub(crate) type Shared<T> = Rc<RefCell<T>>;

/// A value of the pickle.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    None,
    /// A bool (its value is never needed).
    Bool,
    Int(i64),
    /// A float (its value is never needed).
    Float,
    Str(Rc<str>),
    /// Bytes (their content is never needed).
    Bytes,
    Tuple(Rc<[Value]>),
    List(Shared<Vec<Value>>),
    /// A dict (or `collections.OrderedDict`): entries in insertion order.
    Dict(Shared<Vec<(Value, Value)>>),
    /// A global, `module.name`, never imported.
    Global(Rc<(Box<str>, Box<str>)>),
    /// `callable(*args)`, recorded, not called.
    Call(Rc<(Value, Value)>),
    /// What a persistent id stands for (a torch storage: `('storage', type, key, location,
    /// numel)`).
    Persistent(Rc<Value>),
    /// The stack's mark.
    Mark,
}

impl Value {
    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The items, if this is a tuple (or a list).
    pub fn items(&self) -> Option<Vec<Value>> {
        match self {
            Value::Tuple(t) => Some(t.to_vec()),
            Value::List(l) => Some(l.borrow().clone()),
            _ => None,
        }
    }

    /// The entries, if this is a dict.
    pub fn entries(&self) -> Option<Vec<(Value, Value)>> {
        match self {
            Value::Dict(d) => Some(d.borrow().clone()),
            _ => None,
        }
    }

    /// A short description, for errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool => "a bool",
            Value::Int(_) => "an int",
            Value::Float => "a float",
            Value::Str(_) => "a string",
            Value::Bytes => "bytes",
            Value::Tuple(_) => "a tuple",
            Value::List(_) => "a list",
            Value::Dict(_) => "a dict",
            Value::Global(_) => "a global",
            Value::Call(_) => "a call",
            Value::Persistent(_) => "a persistent id",
            Value::Mark => "a mark",
        }
    }
}

/// An unpickled value, with the lists and dicts it may reach.
pub(crate) struct Pickle {
    /// The value the pickle stopped with.
    pub root: Value,
    _arena: Arena,
}

/// Only the root's kind: a list may hold itself, so the value is not printed.
impl std::fmt::Debug for Pickle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pickle({})", self.root.kind())
    }
}

/// Every list and dict a pickle built; emptied on drop, which breaks cycles among them.
#[derive(Default)]
struct Arena {
    lists: Vec<Shared<Vec<Value>>>,
    dicts: Vec<Shared<Vec<(Value, Value)>>>,
}

impl Drop for Arena {
    fn drop(&mut self) {
        for list in &self.lists {
            list.borrow_mut().clear();
        }
        for dict in &self.dicts {
            dict.borrow_mut().clear();
        }
    }
}

/// Reads the pickle in `data` and returns the value it stops with; the error says what is wrong
/// and at which byte.
pub(crate) fn unpickle(data: &[u8]) -> Result<Pickle, String> {
    let mut vm = Machine {
        data,
        at: 0,
        stack: Vec::new(),
        memo: HashMap::new(),
        built: 0,
        arena: Arena::default(),
    };
    let root = vm.run()?;
    Ok(Pickle {
        root,
        _arena: std::mem::take(&mut vm.arena),
    })
}

/// A value on the stack or in the memo, with how deep it nests (lists and dicts count as 1:
/// the arena, not their parent, drops what they hold).
type Slot = (Value, u32);

struct Machine<'a> {
    data: &'a [u8],
    at: usize,
    stack: Vec<Slot>,
    memo: HashMap<u32, Slot>,
    /// Values built so far.
    built: usize,
    arena: Arena,
}

impl Machine<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.data.len());
        let Some(end) = end else {
            return Err(format!(
                "the pickle ends at byte {} inside a value of {n} bytes",
                self.data.len()
            ));
        };
        let out = &self.data[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn line(&mut self) -> Result<Box<str>, String> {
        let rest = &self.data[self.at..];
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            return Err(format!("a name at byte {} has no end of line", self.at));
        };
        let text = std::str::from_utf8(&rest[..end])
            .map_err(|_| format!("a name at byte {} is not UTF-8", self.at))?
            .into();
        self.at += end + 1;
        Ok(text)
    }

    fn string(&mut self, len: usize) -> Result<Value, String> {
        let at = self.at;
        let bytes = self.take(len)?;
        let text = std::str::from_utf8(bytes)
            .map_err(|_| format!("the string at byte {at} is not UTF-8"))?;
        Ok(Value::Str(text.into()))
    }

    /// Pushes a value nesting `depth` deep, counting it against [`MAX_VALUES`] and refusing
    /// one deeper than [`MAX_DEPTH`].
    fn push(&mut self, value: Value, depth: u32) -> Result<(), String> {
        self.built += 1;
        if self.built > MAX_VALUES {
            return Err(format!(
                "it builds more than {MAX_VALUES} values (at byte {}), more than a state dict \
                 needs",
                self.at
            ));
        }
        if depth > MAX_DEPTH {
            return Err(format!(
                "its values nest more than {MAX_DEPTH} deep at byte {}",
                self.at
            ));
        }
        self.stack.push((value, depth));
        Ok(())
    }

    /// Pushes a value that holds no other.
    fn leaf(&mut self, value: Value) -> Result<(), String> {
        self.push(value, 1)
    }

    fn new_list(&mut self, items: Vec<Value>) -> Result<(), String> {
        let list = Rc::new(RefCell::new(items));
        self.arena.lists.push(list.clone());
        self.leaf(Value::List(list))
    }

    fn new_dict(&mut self) -> Result<(), String> {
        let dict = Shared::<Vec<(Value, Value)>>::default();
        self.arena.dicts.push(dict.clone());
        self.leaf(Value::Dict(dict))
    }

    fn pop(&mut self) -> Result<Slot, String> {
        match self.stack.pop() {
            Some((Value::Mark, _)) | None => Err(format!("the stack is empty at byte {}", self.at)),
            Some(slot) => Ok(slot),
        }
    }

    /// The values above the topmost mark, in order, and the deepest of them; the mark is
    /// removed.
    fn pop_mark(&mut self) -> Result<(Vec<Value>, u32), String> {
        let Some(mark) = self
            .stack
            .iter()
            .rposition(|(v, _)| matches!(v, Value::Mark))
        else {
            return Err(format!("no mark on the stack at byte {}", self.at));
        };
        let slots = self.stack.split_off(mark + 1);
        self.stack.pop();
        let depth = slots.iter().map(|s| s.1).max().unwrap_or(0);
        Ok((slots.into_iter().map(|s| s.0).collect(), depth))
    }

    fn top(&self) -> Result<&Value, String> {
        match self.stack.last() {
            Some((Value::Mark, _)) | None => Err(format!("the stack is empty at byte {}", self.at)),
            Some((v, _)) => Ok(v),
        }
    }

    fn tuple(&mut self, n: usize) -> Result<(), String> {
        if self.stack.len() < n {
            return Err(format!("the stack is empty at byte {}", self.at));
        }
        let slots = self.stack.split_off(self.stack.len() - n);
        if slots.iter().any(|(v, _)| matches!(v, Value::Mark)) {
            return Err(format!("a mark inside a tuple at byte {}", self.at));
        }
        let depth = slots.iter().map(|s| s.1).max().unwrap_or(0);
        let items: Vec<Value> = slots.into_iter().map(|s| s.0).collect();
        self.push(Value::Tuple(items.into()), depth + 1)
    }

    fn set_items(&mut self, items: Vec<Value>) -> Result<(), String> {
        if !items.len().is_multiple_of(2) {
            return Err(format!("a dict's items are not pairs at byte {}", self.at));
        }
        let Value::Dict(dict) = self.top()? else {
            return Err(format!(
                "items set on {} at byte {}",
                self.top()?.kind(),
                self.at
            ));
        };
        let mut dict = dict.borrow_mut();
        let mut items = items.into_iter();
        while let (Some(k), Some(v)) = (items.next(), items.next()) {
            dict.push((k, v));
        }
        Ok(())
    }

    fn append(&mut self, items: Vec<Value>) -> Result<(), String> {
        let Value::List(list) = self.top()? else {
            return Err(format!(
                "items appended to {} at byte {}",
                self.top()?.kind(),
                self.at
            ));
        };
        list.borrow_mut().extend(items);
        Ok(())
    }

    /// `callable(*args)`: a dict for `collections.OrderedDict()`, else the call, recorded.
    fn call(&mut self, (callable, c): Slot, (args, a): Slot) -> Result<(), String> {
        if let Value::Global(name) = &callable
            && &*name.0 == "collections"
            && &*name.1 == "OrderedDict"
        {
            return self.new_dict();
        }
        self.push(Value::Call(Rc::new((callable, args))), c.max(a) + 1)
    }

    fn memo_put(&mut self, key: u32) -> Result<(), String> {
        let slot = match self.stack.last() {
            Some((Value::Mark, _)) | None => {
                return Err(format!("the stack is empty at byte {}", self.at));
            }
            Some(slot) => slot.clone(),
        };
        self.memo.insert(key, slot);
        Ok(())
    }

    fn run(&mut self) -> Result<Value, String> {
        loop {
            let at = self.at;
            let op = self
                .u8()
                .map_err(|_| "the pickle ends without a STOP".to_string())?;
            match op {
                0x80 => {
                    let protocol = self.u8()?;
                    if protocol > 5 {
                        return Err(format!("pickle protocol {protocol} is not known"));
                    }
                }
                0x95 => {
                    self.take(8)?; // FRAME: a length hint
                }
                b'.' => return Ok(self.pop()?.0),
                b'(' => self.leaf(Value::Mark)?,
                b'}' => self.new_dict()?,
                b']' => self.new_list(Vec::new())?,
                b')' => self.leaf(Value::Tuple(Rc::new([])))?,
                b'N' => self.leaf(Value::None)?,
                0x88 | 0x89 => self.leaf(Value::Bool)?,
                b'J' => {
                    let b = self.take(4)?;
                    let v = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                    self.leaf(Value::Int(v.into()))?;
                }
                b'K' => {
                    let v = self.u8()?;
                    self.leaf(Value::Int(v.into()))?;
                }
                b'M' => {
                    let b = self.take(2)?;
                    let v = u16::from_le_bytes([b[0], b[1]]);
                    self.leaf(Value::Int(v.into()))?;
                }
                0x8a => {
                    let n = usize::from(self.u8()?);
                    if n > 8 {
                        return Err(format!("an integer of {n} bytes at byte {at}"));
                    }
                    let b = self.take(n)?;
                    let mut bytes = [0u8; 8];
                    bytes[..n].copy_from_slice(b);
                    // Two's complement: fill with the sign of the top byte.
                    if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 {
                        bytes[n..].fill(0xff);
                    }
                    self.leaf(Value::Int(i64::from_le_bytes(bytes)))?;
                }
                b'G' => {
                    self.take(8)?;
                    self.leaf(Value::Float)?;
                }
                b'X' => {
                    let len = self.u32()? as usize;
                    let s = self.string(len)?;
                    self.leaf(s)?;
                }
                0x8c => {
                    let len = usize::from(self.u8()?);
                    let s = self.string(len)?;
                    self.leaf(s)?;
                }
                b'B' | b'C' => {
                    let len = if op == b'B' {
                        self.u32()? as usize
                    } else {
                        usize::from(self.u8()?)
                    };
                    self.take(len)?;
                    self.leaf(Value::Bytes)?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.leaf(Value::Global(Rc::new((module, name))))?;
                }
                0x93 => {
                    let (name, _) = self.pop()?;
                    let (module, _) = self.pop()?;
                    let (Some(m), Some(n)) = (module.as_str(), name.as_str()) else {
                        return Err(format!("a global's name is not a string at byte {at}"));
                    };
                    let global = Value::Global(Rc::new((m.into(), n.into())));
                    self.leaf(global)?;
                }
                b't' => {
                    let (items, depth) = self.pop_mark()?;
                    self.push(Value::Tuple(items.into()), depth + 1)?;
                }
                0x85 => self.tuple(1)?,
                0x86 => self.tuple(2)?,
                0x87 => self.tuple(3)?,
                b'l' => {
                    let (items, _) = self.pop_mark()?;
                    self.new_list(items)?;
                }
                b'd' => {
                    let (items, _) = self.pop_mark()?;
                    self.new_dict()?;
                    self.set_items(items)?;
                }
                b'q' => {
                    let key = u32::from(self.u8()?);
                    self.memo_put(key)?;
                }
                b'r' => {
                    let key = self.u32()?;
                    self.memo_put(key)?;
                }
                0x94 => {
                    let key = self.memo.len() as u32;
                    self.memo_put(key)?;
                }
                b'h' | b'j' => {
                    let key = if op == b'h' {
                        u32::from(self.u8()?)
                    } else {
                        self.u32()?
                    };
                    let Some((v, depth)) = self.memo.get(&key).cloned() else {
                        return Err(format!("memo entry {key} is fetched before it is put"));
                    };
                    self.push(v, depth)?;
                }
                b's' => {
                    let (v, _) = self.pop()?;
                    let (k, _) = self.pop()?;
                    self.set_items(vec![k, v])?;
                }
                b'u' => {
                    let (items, _) = self.pop_mark()?;
                    self.set_items(items)?;
                }
                b'a' => {
                    let (v, _) = self.pop()?;
                    self.append(vec![v])?;
                }
                b'e' => {
                    let (items, _) = self.pop_mark()?;
                    self.append(items)?;
                }
                b'R' | 0x81 => {
                    // REDUCE `callable(*args)`, NEWOBJ `class.__new__(class, *args)`.
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    self.call(callable, args)?;
                }
                b'b' => {
                    // BUILD sets an object's state; a dict keeps its entries (torch's
                    // `_metadata`), and a recorded call keeps its arguments.
                    self.pop()?;
                    self.top()?;
                }
                b'Q' => {
                    let (pid, depth) = self.pop()?;
                    self.push(Value::Persistent(Rc::new(pid)), depth + 1)?;
                }
                other => {
                    return Err(format!(
                        "pickle opcode 0x{other:02x} at byte {at} is not one a state dict uses"
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dict of two entries, one a memoised string fetched twice, as protocol 2 writes it.
    #[test]
    fn a_small_dict_reads_back() {
        let p = b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01K\x07X\x01\x00\x00\x00bh\x01u.";
        let v = unpickle(p).unwrap();
        let entries = v.root.entries().unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].0.as_str(), Some("a"));
        assert_eq!(entries[0].1.as_int(), Some(7));
        assert_eq!(entries[1].1.as_str(), Some("a"));
    }

    /// Lengths past the end, unknown opcodes, an empty stack and a missing memo entry are
    /// errors, never a panic or an allocation of the length asked for.
    #[test]
    fn malformed_pickles_are_errors() {
        for (bad, says) in [
            (&b"X\xff\xff\xff\xff"[..], "ends at byte"),
            (b"\x80\x02\xfe", "not one a state dict uses"),
            (b"t.", "no mark"),
            (b".", "stack is empty"),
            (b"h\x05.", "fetched before it is put"),
            (b"\x8a\x09\x00", "of 9 bytes"),
            (b"K\x01", "without a STOP"),
            (b"}K\x01s.", "stack is empty"),
            (b"K\x01K\x02u.", "no mark"),
        ] {
            let err = unpickle(bad).unwrap_err();
            assert!(err.contains(says), "{bad:?}: {err}");
        }
    }

    /// A value fetched from the memo many times is shared, not copied: 30 doublings of a
    /// tuple take a few hundred bytes of pickle and of memory.
    #[test]
    fn doubling_through_the_memo_stays_small() {
        let mut p = b"\x80\x02K\x01q\x00".to_vec();
        for _ in 0..30 {
            p.extend_from_slice(b"h\x00h\x00\x86q\x00");
        }
        p.push(b'.');
        let v = unpickle(&p).unwrap();
        assert!(matches!(v.root, Value::Tuple(_)));
    }

    /// Tuples nested a million deep are refused at the bound instead of overflowing the stack
    /// when dropped; lists nested as deep, and a list holding itself, are built and dropped.
    #[test]
    fn deep_nesting_and_cycles_are_harmless() {
        let mut deep_tuples = b"\x80\x02N".to_vec();
        deep_tuples.extend(std::iter::repeat_n(0x85, 1_000_000));
        deep_tuples.push(b'.');
        let err = unpickle(&deep_tuples).map(|_| ()).unwrap_err();
        assert!(err.contains("nest more than 256 deep"), "{err}");

        // Each new list appended into the one before it, fetched from the memo.
        let mut deep_lists = b"\x80\x02]q\x00".to_vec();
        for _ in 0..200_000 {
            deep_lists.extend_from_slice(b"h\x00]q\x00a");
        }
        deep_lists.push(b'.');
        let _ = unpickle(&deep_lists);

        // A list appended into itself.
        let cycle = b"\x80\x02]q\x00h\x00a.";
        let p = unpickle(cycle).unwrap();
        let Value::List(list) = &p.root else {
            panic!("{:?}", p.root.kind())
        };
        assert_eq!(list.borrow().len(), 1);
    }

    /// More values than [`MAX_VALUES`] are refused.
    #[test]
    fn too_many_values_are_refused() {
        let mut p = b"\x80\x02".to_vec();
        p.extend(std::iter::repeat_n(b'N', MAX_VALUES + 1));
        p.push(b'.');
        let err = unpickle(&p).map(|_| ()).unwrap_err();
        assert!(err.contains("more than 2000000 values"), "{err}");
    }
}
